"""Admission: which task may start now, which waits in the queue, and which overflows."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, get_args

from ._exceptions import BackgroundQueueFull
from ._handle import HOLDS_SLOT, RESERVED

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

    from ._handle import TaskHandle

Overflow: TypeAlias = Literal["reject", "wait", "drop", "offload"]
"""What ``add_task`` does when the queue is full.

``"reject"``: raise `BackgroundQueueFull` (see ``queue_full_response``).
``"wait"``: raise it too, pointing at ``await add_task_wait(...)``, which waits for room.
``"drop"``: drop the new task, logged as dropped.
``"offload"``: hand an ``@offloadable`` function's task to the offload bridge instead
(logged as offloaded); reject any other task.
A request's task held until its response keeps its room from ``add_task`` on, so it meets
the policy there, in the handler, and is never dropped later for want of room.
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
    """The limits of one scheduler: slots in use, in all and per task name, and the queue.

    Room is a slot or a queue place. A task a request holds until its response is sent
    *reserves* room when it is added, so that it can always be placed when it is released:
    a task that ``add_task`` accepted is never dropped later for lack of room. Which of the
    two it will take is only known then, so a reservation counts against
    ``max_concurrency + max_pending``, and against its name's limit plus the queue.
    """

    __slots__ = (
        "_by_name",
        "_reserved_by_name",
        "limits",
        "max_concurrency",
        "max_pending",
        "queue",
        "reserved",
        "used",
        "waiters",
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
        self.reserved = 0
        """Tasks held by requests that have not ended yet, each keeping room for itself."""
        self._reserved_by_name: dict[str | None, int] = dict.fromkeys((*self.limits, None), 0)
        # add_task_wait callers in the order they came: the task each waits to add, and the
        # held tasks of its request, if the task will wait for that request's response too.
        self.waiters: list[
            tuple[TaskHandle[Any], asyncio.Future[None], Sequence[TaskHandle[Any]] | None]
        ] = []

    def __repr__(self) -> str:
        return (
            f"<Admission used={self.used}/{self.max_concurrency} "
            f"queued={len(self.queue)}/{self.max_pending} reserved={self.reserved}>"
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
        """Give a slot back; the caller starts queued tasks, then calls ``make_room``."""
        self.used -= 1
        if name in self._by_name:
            self._by_name[name] -= 1

    def fits(self, name: str) -> bool:
        """Tell whether a new task of *name* has room, once every reservation is placed."""
        if self.max_pending is None:  # the queue takes every task without a slot
            return True
        if not self.reserved:  # the common case: room as it is now
            return self.has_slot(name) or len(self.queue) < self.max_pending
        return self._fits_beside(
            name, self._reserved_by_name, self._by_name, self.used, len(self.queue)
        )

    def can_ever_fit(self, name: str, stuck: Iterable[Sequence[TaskHandle[Any]]]) -> bool:
        """Tell whether room for a task of *name* can come while *stuck* tasks keep theirs.

        *stuck* holds the tasks of requests that cannot release them while they wait (the
        caller's, and those of requests waiting in ``add_task_wait`` too): everything
        else running, queued or reserved ends or is released in time.
        """
        reserved = dict.fromkeys(self._reserved_by_name, 0)
        for handles in stuck:
            for handle in handles:
                if handle._flags & RESERVED:
                    reserved[self._line_name(handle.name)] += 1
        return self._fits_beside(name, reserved, dict.fromkeys(self.limits, 0), 0, 0)

    def _fits_beside(
        self,
        name: str,
        reserved: dict[str | None, int],
        used_by_name: dict[str, int],
        used: int,
        queued: int,
    ) -> bool:
        """Place *reserved* and a task of *name* beside *used* slots and *queued* tasks.

        Each takes a slot while its name's limit and ``max_concurrency`` allow, and the
        queue takes the rest, within ``max_pending``.
        """
        assert self.max_pending is not None
        own = self._line_name(name)
        slots = 0
        for limited, limit in self.limits.items():
            wanted = reserved[limited] + (limited == own)
            if wanted:
                slots += min(wanted, limit - used_by_name[limited])
        slots += reserved[None] + (own is None)
        if self.max_concurrency is not None:
            slots = min(slots, self.max_concurrency - used)
        return queued + sum(reserved.values()) + 1 - slots <= self.max_pending

    def _line_name(self, name: str) -> str | None:
        """The name a task's reservation counts under: its own if limited, else ``None``."""
        return name if name in self.limits else None

    def reserve(self, handle: TaskHandle[Any]) -> None:
        """Keep room for *handle* until its request releases it (``fits`` said there is)."""
        self._count_reserved(handle, 1)
        handle._flags |= RESERVED

    def place(self, handle: TaskHandle[Any]) -> bool:
        """Turn *handle*'s reservation, if any, into a slot (True) or a queue place (False).

        Never refused: the reservation kept that room, and a task without one was
        checked with ``fits``.
        """
        if handle._flags & RESERVED:
            handle._flags &= ~RESERVED
            self._count_reserved(handle, -1)
        if self.has_slot(handle.name):
            self.take_slot(handle.name)
            handle._flags |= HOLDS_SLOT
            return True
        self.queue.append(handle)
        return False

    def next_startable(self) -> TaskHandle[Any] | None:
        """Take the first queued task that has a slot now (others may wait on a name limit)."""
        return self.queue.pop_oldest(self.has_slot)

    def forget(self, handle: TaskHandle[Any]) -> None:
        """Give back the room of a task that ended before it started (cancelled, dropped)."""
        if handle._flags & RESERVED:
            handle._flags &= ~RESERVED
            self._count_reserved(handle, -1)
        elif not self.queue.discard(handle):
            return
        self.make_room()

    def line_up(
        self, handle: TaskHandle[Any], *, held: Sequence[TaskHandle[Any]] | None
    ) -> asyncio.Future[None] | None:
        """Give the room to wait for before keeping it for *handle*; ``None``: room now.

        Room goes to waiting callers in the order they came, as soon as it is made: no
        caller that does not wait can take it first; once the future is done, the room is
        kept for *handle* (reserved). *held* is the caller's request's held tasks, if the
        task will wait for its response too: when the room could only come from tasks that
        cannot be released while this caller waits (its own, and those of other requests
        waiting here), ``BackgroundQueueFull`` is raised instead of waiting for ever.
        """
        if self.fits(handle.name):  # room, and so no earlier caller waits for this name
            return None
        if held is not None:
            stuck = {id(tasks): tasks for _, _, tasks in self.waiters if tasks is not None}
            stuck[id(held)] = held
            if not self.can_ever_fit(handle.name, stuck.values()):
                raise BackgroundQueueFull(
                    f"task {handle.name!r} not accepted: the room is kept for tasks that "
                    "start after the responses of this request and of others waiting for "
                    "room, so it could not come while this request waits; add fewer tasks "
                    "per request, raise max_pending, or start='immediately'"
                )
        room = asyncio.get_running_loop().create_future()
        self.waiters.append((handle, room, held))  # a list: waits are rare, and short
        return room

    def leave_line(self, room: asyncio.Future[None]) -> None:
        """The caller stopped waiting: out of the line, unless it was woken first."""
        # Woken first, it is out already, with the room reserved for its task, which the
        # task's cancellation gives back.
        if room.cancelled():
            for index, (_, waiting_for, _) in enumerate(self.waiters):
                if waiting_for is room:
                    del self.waiters[index]
                    return

    def make_room(self) -> None:
        """Hand room that was just made to waiting callers, first come first served.

        A caller whose name is held back by its limit keeps its place, and those behind it
        whose names fit get in.
        """
        waiters = self.waiters
        index = 0
        while index < len(waiters):
            handle, waiter, _ = waiters[index]
            if waiter.done():  # cancelled meanwhile
                del waiters[index]
            elif self.fits(handle.name):
                del waiters[index]
                self.reserve(handle)
                waiter.set_result(None)
            elif handle.name in self.limits:
                index += 1
            else:  # no room for a name without a limit: none for any other name either
                return

    def _count_reserved(self, handle: TaskHandle[Any], change: int) -> None:
        self.reserved += change
        self._reserved_by_name[self._line_name(handle.name)] += change
