"""Admission: which task may start now, which waits in the queue, and which overflows."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, get_args

if TYPE_CHECKING:
    from collections.abc import Mapping

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


class Admission:
    """The limits of one scheduler: slots in use, in all and per task name, and the queue."""

    __slots__ = ("_by_name", "limits", "max_concurrency", "max_pending", "queue", "room", "used")

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
        self.queue: deque[TaskHandle[Any]] = deque()
        self.room: deque[asyncio.Future[None]] = deque()  # add_task_wait callers

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
        for handle in self.queue:
            if self.has_slot(handle.name):
                self.queue.remove(handle)
                self._make_room()
                return handle
        return None

    def forget(self, handle: TaskHandle[Any]) -> None:
        """Take a task that ended before it started (cancelled, dropped) off the queue."""
        try:
            self.queue.remove(handle)
        except ValueError:
            return
        self._make_room()

    async def wait_for_room(self) -> None:
        while self.queue_full():
            waiter = asyncio.get_running_loop().create_future()
            self.room.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._make_room()  # woken, but leaving: wake the next one instead
                raise
            finally:
                if waiter in self.room:
                    self.room.remove(waiter)

    def _make_room(self) -> None:
        while self.room:
            waiter = self.room.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
