"""Per-task deadlines (slow-task warnings, timeouts) on one shared loop timer.

One ``loop.call_later`` per task is simple, but costs more than the task itself in a
burst (uvloop keeps a libuv timer per handle; asyncio a heap entry, left behind when
cancelled). Here deadlines fall into buckets of ``RESOLUTION_S``, and a single loop timer
wakes for the earliest bucket.
"""

from __future__ import annotations

import contextvars
import heapq
import math
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, cast, final

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from ._handle import TaskHandle

_NO_CONTEXT: Final = contextvars.Context()

RESOLUTION_S: Final = 0.005
"""How late a deadline may fire, at most, on an event loop that is not busy."""

SLACK: Final = 32
"""How many disarmed handles a bucket may hold, whatever its size, before it is compacted."""


@final
class Bucket:
    """The handles whose deadline falls in one slice of time, keyed by its end.

    A handle is in the bucket while its ``_deadline`` is that bucket. Its ``handles`` are a
    list, not a set: 8 bytes a task instead of 50 to 100. Disarming leaves the handle in
    place and counts it out; the bucket is emptied once none is armed, and compacted once
    it holds more ended tasks than armed ones and than ``SLACK``: a burst of tasks that end
    together costs no compaction, and a long task never keeps many short ones alive. A
    class of its own that holds a list, not a subclass of list: compiled, its attributes
    and the list's methods are then native (3,000 instructions a task with a deadline).
    """

    __slots__ = ("armed", "handles", "key")

    def __init__(self, key: int) -> None:
        self.key = key
        self.armed = 0
        self.handles: list[TaskHandle[Any]] = []

    def compact(self) -> None:
        """Keep only the handles still armed here, each once."""
        self.handles = list(dict.fromkeys(h for h in self.handles if h._deadline is self))


class Deadlines:
    """The armed deadlines of one scheduler; each task has at most one at a time.

    A handle's ``_deadline`` is the bucket it is armed in. Handles are typed as the compiled
    ``TaskHandle``, not a protocol, so that arming and disarming read and write that slot
    natively (490 instructions fewer a task that waits).
    """

    __slots__ = (
        "_buckets",
        "_keys",
        "_last",
        "_loop",
        "_on_timer",
        "_timer",
        "_timer_key",
        "slack",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        on_timer: Callable[[TaskHandle[Any]], object],
    ) -> None:
        self._loop = loop
        self._on_timer = on_timer  # called with each handle whose deadline has come
        self.slack = SLACK  # an attribute, so that tests can make buckets compact sooner
        self._buckets: dict[int, Bucket] = {}
        self._keys: list[int] = []  # a heap of the keys in _buckets
        self._timer: asyncio.TimerHandle | None = None
        self._timer_key = 0
        # The bucket armed in last, while it is in _buckets: the tasks of a burst fall in the
        # same one, found by comparing its key, where a look-up in _buckets boxes the key
        # (400 instructions a task that waits, on 3.12).
        self._last: Bucket | None = None

    def __len__(self) -> int:
        return sum(bucket.armed for bucket in self._buckets.values())

    def __repr__(self) -> str:
        return f"<Deadlines armed={len(self)} buckets={len(self._buckets)}>"

    def arm(self, handle: TaskHandle[Any], at: float) -> None:
        """Call ``on_timer(handle)`` at ``perf_counter()`` time *at*, give or take a bucket."""
        key = math.ceil(at / RESOLUTION_S)
        bucket = self._last
        if bucket is None or bucket.key != key:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Bucket(key)
                heapq.heappush(self._keys, key)
                if self._timer is None or key < self._timer_key:
                    self._wake_at(key)
            self._last = bucket
        bucket.handles.append(handle)
        bucket.armed += 1
        handle._deadline = bucket

    def disarm(self, handle: TaskHandle[Any]) -> None:
        """Forget *handle*'s deadline, if it has one."""
        armed_in = handle._deadline
        if armed_in is not None:
            bucket = cast("Bucket", armed_in)  # compiled, a check of its type, then native
            handle._deadline = None
            armed = bucket.armed = bucket.armed - 1
            if not armed:
                # Free it now, not when its time comes (a 30 s timeout, say); unless it is no
                # longer ours (fired, or dropped by close()) and the key has a new bucket.
                if self._buckets.get(bucket.key) is bucket:
                    del self._buckets[bucket.key]
                if self._last is bucket:
                    self._last = None
                bucket.handles.clear()
            elif (held := len(bucket.handles)) > 2 * armed and held > armed + self.slack:
                bucket.compact()

    def close(self) -> None:
        """Drop every deadline and the loop timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()
        self._keys.clear()
        self._last = None

    def _wake_at(self, key: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_key = key
        delay = max(key * RESOLUTION_S - perf_counter(), 0.0)
        assert self._loop is not None, "a scheduler arms deadlines only once bound to a loop"
        # In no task's context: the timer must not keep a request's contextvars alive.
        self._timer = self._loop.call_later(delay, self._fire, context=_NO_CONTEXT)

    def _fire(self) -> None:
        self._timer = None
        due = math.floor(perf_counter() / RESOLUTION_S)
        while self._keys and self._keys[0] <= due:
            bucket = self._buckets.pop(heapq.heappop(self._keys), None)
            if bucket is None:  # emptied by disarming before its time
                continue
            if self._last is bucket:
                self._last = None
            bucket.compact()  # first, so that no timer's work can change the bucket
            handles = bucket.handles
            for handle in handles:
                handle._deadline = None
            on_timer = self._on_timer
            for handle in handles:
                handle._context.run(on_timer, handle)
        self._wake_for_earliest()

    def _wake_for_earliest(self) -> None:
        # After _fire, the loop timer may be set for a later deadline that a task's timer
        # armed (its timeout, after its slow warning): earlier ones must not wait for it.
        if self._keys and (self._timer is None or self._keys[0] < self._timer_key):
            self._wake_at(self._keys[0])
