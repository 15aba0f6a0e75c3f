"""The call timeout of the bridge's backend calls, on one loop timer for all of them.

Every offloaded job makes a backend call under ``call_timeout``. A loop timer per call
(``call_later``, then cancelled) cost 3,600 instructions a job, and more with many calls in
flight, as the loop keeps its timers ordered. Here, as for the core's task deadlines
(``_core/_deadlines.py``), calls share slices of time, and a single loop timer wakes at the
end of the earliest slice. Simpler than there: every call has the same timeout, so slices
end in the order they are made, and a queue stands in for the heap.
"""

from __future__ import annotations

import contextvars
from collections import deque
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    import asyncio

Calls: TypeAlias = "dict[asyncio.Task[Any], bool]"
"""The tasks whose call ends in one slice, each with whether its call was timed out."""

SLICES_PER_TIMEOUT: Final = 16
"""How finely the timeout is cut: a call is timed out at most 1/16 of it late, never early."""

_NO_CONTEXT: Final = contextvars.Context()


class CallTimeouts:
    """The calls in flight on one event loop, each timed out after *timeout* seconds."""

    __slots__ = ("_slice_s", "_slices", "_timer", "loop", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self._slice_s = timeout / SLICES_PER_TIMEOUT
        self._slices: deque[tuple[float, Calls]] = deque()  # (end, calls), by end
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        calls = sum(len(calls) for _, calls in self._slices)
        return f"<CallTimeouts {self.timeout}s calls={calls} slices={len(self._slices)}>"

    def watch(self, task: asyncio.Task[Any]) -> Calls:
        """Cancel *task* once its call has taken the timeout; return the slice that holds it.

        The caller pops *task* from that slice when the call ends: ``True`` if it was
        timed out (and cancelled), ``False`` otherwise.
        """
        due = self.loop.time() + self.timeout
        slices = self._slices
        if slices and slices[-1][0] >= due:
            calls = slices[-1][1]
        else:
            calls = {}
            slices.append((due + self._slice_s, calls))
            if self._timer is None:
                self._wake_at(due + self._slice_s)
        calls[task] = False
        return calls

    def _wake_at(self, end: float) -> None:
        # In no task's context: the timer must not keep a request's contextvars alive.
        self._timer = self.loop.call_at(end, self._expire, context=_NO_CONTEXT)

    def _expire(self) -> None:
        self._timer = None
        now, slices = self.loop.time(), self._slices
        while slices and slices[0][0] <= now:
            _, calls = slices.popleft()
            for task in list(calls):
                calls[task] = True
                task.cancel()
        if slices:  # the next slice, or this one again if the timer fired a little early
            self._wake_at(slices[0][0])
