"""Admission: which task may start now, which waits in the queue, and which overflows."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, get_args

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping

    from ._handle import TaskHandle

Overflow: TypeAlias = Literal["reject", "wait", "drop", "offload"]
"""What ``add_task`` does when the queue is full.

``"reject"``: raise `BackgroundQueueFull` (see ``queue_full_response``).
``"wait"``: raise it too, pointing at ``await add_task_wait(...)``, which waits for room.
``"drop"``: drop the new task, logged as dropped.
``"offload"``: hand an ``@offloadable`` function's task to the offload bridge instead
(logged as offloaded); reject any other task.
Tasks released after their response, when nobody can be told, are dropped (or offloaded)
rather than rejected.
"""

OVERFLOW_POLICIES: Final = get_args(Overflow)


def check_limit(option: str, value: object) -> None:
    """Raise a clear error unless *value* is a positive integer or ``None``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{option} must be a positive integer or None, not {value!r}")


class TaskQueue:
    """Tasks waiting for a slot, in the order added, kept in one line per limited name.

    The next task to start is the oldest head among the lines whose name has a free slot,
    so tasks held back by their name's limit are never scanned past: a start costs one look
    per limited name, not one per queued task. A task that leaves early (cancelled, dropped)
    is only unlisted; its entry is skipped when it reaches the head of its line.
    """

    __slots__ = ("_entries", "_lines", "_live", "_order")

    def __init__(self, limited: Collection[str]) -> None:
        # One line per limited name, and one (None) for every other name.
        self._lines: dict[str | None, deque[tuple[int, TaskHandle[Any]]]] = {
            name: deque() for name in (*limited, None)
        }
        self._live: dict[TaskHandle[Any], int] = {}  # queued task -> its place in the order
        self._order = itertools.count()
        self._entries = 0  # in all lines, including those of tasks that left early

    def __repr__(self) -> str:
        return f"<TaskQueue queued={len(self)} stale={self._entries - len(self)}>"

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[TaskHandle[Any]]:
        return iter(self._live)  # a dict keeps the order added

    def append(self, handle: TaskHandle[Any]) -> None:
        place = self._live[handle] = next(self._order)
        self._line_of(handle.name).append((place, handle))
        self._entries += 1

    def pop_oldest(self, can_start: Callable[[str], bool]) -> TaskHandle[Any] | None:
        """Take the oldest queued task whose name *can_start*, or return None."""
        if not self._live:
            return None
        oldest: deque[tuple[int, TaskHandle[Any]]] | None = None
        for line in self._lines.values():
            while line and self._live.get(line[0][1]) != line[0][0]:  # it left early
                line.popleft()
                self._entries -= 1
            if not line:
                continue
            place, head = line[0]
            if (oldest is None or place < oldest[0][0]) and can_start(head.name):
                oldest = line
        if oldest is None:
            return None
        _, handle = oldest.popleft()
        self._entries -= 1
        del self._live[handle]
        return handle

    def discard(self, handle: TaskHandle[Any]) -> bool:
        """Unlist *handle* if it is queued; return whether it was."""
        if self._live.pop(handle, None) is None:
            return False
        if self._entries > 2 * len(self._live):  # mostly stale: rebuild, O(1) a discard on average
            for line in self._lines.values():
                line.clear()
            for queued, place in self._live.items():
                self._line_of(queued.name).append((place, queued))
            self._entries = len(self._live)
        return True

    def _line_of(self, name: str) -> deque[tuple[int, TaskHandle[Any]]]:
        return self._lines[name if name in self._lines else None]


class Admission:
    """The limits of one scheduler: slots in use, in all and per task name, and the queue."""

    __slots__ = (
        "_arrivals",
        "_by_name",
        "limits",
        "max_concurrency",
        "max_pending",
        "queue",
        "room",
        "used",
    )

    def __init__(
        self,
        max_concurrency: int | None,
        max_pending: int | None,
        limits: Mapping[str, int],
    ) -> None:
        check_limit("max_concurrency", max_concurrency)
        check_limit("max_pending", max_pending)
        for name, limit in limits.items():
            check_limit(f"limits[{name!r}]", limit)
        self.max_concurrency = max_concurrency
        self.max_pending = max_pending
        self.limits = dict(limits)
        self.used = 0
        self._by_name: dict[str, int] = dict.fromkeys(self.limits, 0)
        self.queue = TaskQueue(self.limits)
        # add_task_wait callers, first come first served: (arrival, waiter), a heap.
        self.room: list[tuple[int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    def __repr__(self) -> str:
        return (
            f"<Admission used={self.used}/{self.max_concurrency} "
            f"queued={len(self.queue)}/{self.max_pending}>"
        )

    def has_slot(self, name: str) -> bool:
        if self.max_concurrency is not None and self.used >= self.max_concurrency:
            return False
        limit = self.limits.get(name)
        return limit is None or self._by_name[name] < limit

    def take_slot(self, name: str) -> None:
        self.used += 1
        if name in self._by_name:
            self._by_name[name] += 1

    def free_slot(self, name: str) -> None:
        self.used -= 1
        if name in self._by_name:
            self._by_name[name] -= 1

    def queue_full(self) -> bool:
        return self.max_pending is not None and len(self.queue) >= self.max_pending

    def next_startable(self) -> TaskHandle[Any] | None:
        """Take the first queued task that has a slot now (others may wait on a name limit)."""
        handle = self.queue.pop_oldest(self.has_slot)
        if handle is not None:
            self._make_room()
        return handle

    def forget(self, handle: TaskHandle[Any]) -> None:
        """Take a task that ended before it started (cancelled, dropped) off the queue."""
        if self.queue.discard(handle):
            self._make_room()

    async def wait_for_room(self) -> None:
        arrival = next(self._arrivals)  # kept when an add_task that did not wait takes the room
        while self.queue_full():
            entry = (arrival, asyncio.get_running_loop().create_future())
            heapq.heappush(self.room, entry)
            try:
                await entry[1]
            except asyncio.CancelledError:
                if entry[1].cancelled():  # still in line: leave it
                    self.room.remove(entry)
                    heapq.heapify(self.room)
                else:
                    self._make_room()  # woken, but leaving: wake the next one instead
                raise

    def _make_room(self) -> None:
        while self.room:
            _, waiter = heapq.heappop(self.room)
            if not waiter.done():
                waiter.set_result(None)
                return
