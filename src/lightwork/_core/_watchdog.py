"""The loop watchdog: a thread that sees the event loop miss its beats, and says who held it.

The loop beats a few times per threshold; the thread checks the beats. It does two jobs,
each with its own threshold:

- *sampling* (on by default, at the scheduler's ``block_threshold``): when the loop has
  missed its beats for the threshold, the thread notes which lightwork task is running and
  where it is (its stack); the loop's next beat, once the task lets go, measures how long
  the loop was held and charges the task with it. Loop-block detection without a cost per
  step: a step timer would read the clock twice per step of every task.
- *reporting* (``watchdog=``): while the loop is still stuck, the thread logs it with the
  stack, for a step that never ends (an endless loop, a blocking call with no timeout).

A stall is not always a task's: a garbage collection, or a machine that leaves the loop's
thread waiting for a CPU (more runnable threads than cores, a container at its CPU quota),
pauses whatever step runs. Both are measured and taken out of what a task is charged with;
the CPU wait from the thread's ``schedstat`` on Linux (elsewhere it is taken as none).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from time import perf_counter
from traceback import StackSummary, walk_stack
from typing import TYPE_CHECKING, Any, Final

from . import _logging as log
from . import _monitor
from ._reporting import ms

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from contextvars import Context
    from types import FrameType

    from ._handle import TaskHandle

    OnBlock = Callable[[TaskHandle[Any], float, str, Context], None]

_STACK_LIMIT: Final = 30
_MIN_WAIT_S: Final = 0.001
_SCHEDSTAT: Final = "/proc/self/task/{}/schedstat"
"""A thread's time on a CPU, and waiting for one (runnable, not running), in ns (Linux)."""

request_routes: list[Callable[[FrameType], str | None]] = []
"""What reads the route of the request (``"GET /path"``) that a frame serves, the ASGI
layer's: tried on the loop thread's stack when it is stuck, so that nothing is recorded per
request."""


class LoopWatchdog:
    """Watch one event loop from a thread: sample the tasks that hold it, report it stuck.

    *threshold_s* is how long the loop may stay stuck before ``event_loop_blocked`` is
    logged (``None``: never). *sample_s* is how long a task may hold it before the thread
    samples it and *on_block* charges it, on the loop, once it lets go; *tasks* are the
    running tasks to find it among.
    """

    def __init__(
        self,
        threshold_s: float | None,
        *,
        sample_s: float | None = None,
        tasks: Collection[TaskHandle[Any]] = (),
        on_block: OnBlock | None = None,
    ) -> None:
        self.threshold_s = threshold_s
        self.sample_s = sample_s
        self._interval = min(t for t in (threshold_s, sample_s) if t is not None) / 4
        self._tasks = tasks
        self._on_block = on_block
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._schedstat: int | None = None  # the loop thread's, open while watching
        self._last_beat = 0.0
        self._gc_at_beat = 0.0
        self._cpu_wait_at_beat = 0.0
        # Set by the thread during a stall, taken by the beat that ends it: the beat the
        # loop missed, the task that held it, its stack then, and its context.
        self._sampled: tuple[float, TaskHandle[Any], StackSummary | None, Context] | None = None
        self._beat_timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "watching" if self._thread is not None else "stopped"
        return f"<LoopWatchdog {state} threshold={self.threshold_s} sample={self.sample_s}>"

    def start(self) -> None:
        """Start beating on the running loop and watching it from a daemon thread."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            self._schedstat = os.open(_SCHEDSTAT.format(threading.get_native_id()), os.O_RDONLY)
        except OSError:  # not Linux, or a kernel without it: CPU waits are not told apart
            self._schedstat = None
        self._stop.clear()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="lightwork-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the beats and the thread."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._beat_timer is not None:
            self._beat_timer.cancel()
            self._beat_timer = None
        if self._schedstat is not None:
            os.close(self._schedstat)
            self._schedstat = None

    def settle(self) -> None:
        """Charge the task sampled in the stall that is ending now; on the loop's thread.

        The beat after the stall does it, or the task's own end, if it ends in the very step
        that held the loop: its end's events then know how long it held it. The loop was
        held from some time within the beat interval before the beat it missed: the middle
        of that interval is the estimate, right to half an interval. Collections and the
        thread's waits for a CPU are not the task's; a stall that is under the threshold
        without the waits would not have been sampled on a machine with a CPU to spare, and
        is not charged at all.
        """
        sampled, self._sampled = self._sampled, None
        if sampled is not None and sampled[0] == self._last_beat and self._on_block is not None:
            missed, handle, stack, context = sampled
            # The clock first: reading the CPU wait lets go of the GIL, and a wait to get it
            # back must not count as the task's (a wait counted twice is on the safe side).
            now = perf_counter()
            in_gc = _monitor.gc_seconds - self._gc_at_beat
            waited = self._cpu_wait() - self._cpu_wait_at_beat
            held = now - missed - self._interval / 2 - in_gc - waited
            if waited and held < (self.sample_s or 0.0):
                return  # the machine's stall, not the task's
            self._on_block(handle, held, "".join(stack.format()) if stack else "", context)

    def _beat(self) -> None:
        if self._sampled is not None:
            self.settle()
        self._cpu_wait_at_beat = self._cpu_wait()  # before the clock, as in ``settle``
        now = perf_counter()
        self._last_beat = now
        self._gc_at_beat = _monitor.gc_seconds
        assert self._loop is not None
        self._beat_timer = self._loop.call_later(self._interval, self._beat)

    def _cpu_wait(self) -> float:
        """Seconds the loop's thread has waited for a CPU so far (0.0 where not known).

        One ``pread`` of a file kept open, about 2 us: read at each beat, never per step.
        """
        if self._schedstat is None:
            return 0.0
        try:
            return int(os.pread(self._schedstat, 64, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    def _watch(self) -> None:
        """Look at the beats only when a stall could have crossed a threshold since the last.

        Each look takes the GIL from the loop's thread: a look per threshold rather than per
        beat interval keeps those hand-offs few while the loop is well.
        """
        reported_beat = sampled_beat = 0.0
        loop = self._loop
        assert loop is not None
        while True:
            last_beat = self._last_beat
            due = self._next_look(last_beat, sampled_beat, reported_beat, perf_counter())
            if self._stop.wait(due - perf_counter()):
                return
            if not loop.is_running():  # it ended without a shutdown to stop this thread
                return
            if self._last_beat != last_beat:  # it beat meanwhile: nothing to see yet
                continue
            stuck = perf_counter() - last_beat - self._interval  # past the beat it missed
            if (
                self.sample_s is not None
                and sampled_beat != last_beat
                and stuck + self._interval >= self.sample_s  # it may have been held that long
            ):
                sampled_beat = last_beat  # once per stall
                self._sample(last_beat)
            if (
                self.threshold_s is not None
                and reported_beat != last_beat
                and stuck >= self.threshold_s
            ):
                reported_beat = last_beat
                self._report(stuck)

    def _next_look(
        self, last_beat: float, sampled_beat: float, reported_beat: float, now: float
    ) -> float:
        """When a stall since *last_beat* would next cross a threshold not yet acted on.

        Once both are acted on, only the next beat is news: looked for once an interval, not
        at every millisecond of a long stall (each look takes the GIL from the loop's thread).
        """
        looks = []
        if self.sample_s is not None and sampled_beat != last_beat:
            looks.append(last_beat + self.sample_s)
        if self.threshold_s is not None and reported_beat != last_beat:
            looks.append(last_beat + self._interval + self.threshold_s)
        if not looks:
            return max(last_beat + self._interval * 2, now + self._interval)
        return max(min(looks), now + _MIN_WAIT_S)

    def _culprit(self) -> TaskHandle[Any] | None:
        """The lightwork task holding the loop, if one does."""
        # Set while steps are timed, and around a task's sync callbacks.
        handle: TaskHandle[Any] | None = _monitor.stepping.handle
        if handle is not None and handle._scheduler._loop is not self._loop:
            handle = None  # a step on another loop, in another thread
        if handle is not None:
            return handle
        current = asyncio.current_task(self._loop)
        if current is not None:
            for running in list(self._tasks):  # once per stall: a scan is cheap enough
                if running._task is current:
                    return running
        return None

    def _frame(self) -> FrameType | None:
        """The frame the loop's thread runs now."""
        return sys._current_frames().get(self._loop_thread)

    @staticmethod
    def _stack(frame: FrameType | None) -> StackSummary | None:
        """Where *frame* is; source lines are read when it is formatted."""
        if frame is None:
            return None
        stack = StackSummary.extract(walk_stack(frame), limit=_STACK_LIMIT, lookup_lines=False)
        stack.reverse()  # outermost first, as tracebacks print
        return stack

    @staticmethod
    def _request_route(frame: FrameType | None) -> str | None:
        """The route of the request whose code *frame*, or a frame it was called from, runs."""
        while frame is not None:  # from the innermost out: a mounted app's request first
            for read_route in request_routes:
                route = read_route(frame)
                if route is not None:
                    return route
            frame = frame.f_back
        return None

    def _sample(self, missed_beat: float) -> None:
        handle = self._culprit()
        if handle is None:  # a request's own code, or none of ours: reporting's job
            return
        # A copy of the task's context: it may end in this very step, and its handle then
        # lets go of its own; the report needs its request_id. Published before the stack
        # is read, so that a step ending meanwhile is still charged.
        sampled = (missed_beat, handle, None, handle._context.copy())
        self._sampled = sampled
        stack = self._stack(self._frame())  # formatted on the loop, once the task lets go
        if stack is not None and self._sampled is sampled:
            self._sampled = (missed_beat, handle, stack, sampled[3])

    def _report(self, stuck: float) -> None:
        assert self.threshold_s is not None
        # What the loop thread is doing, read first: formatting the stack lets it run on.
        now = perf_counter()
        handle = self._culprit()
        collecting_since = _monitor.collecting_since
        began, ended = _monitor.last_collection
        if collecting_since:
            in_gc = now - collecting_since
        else:  # a collection holds the GIL: this thread may only see a stall once it ended
            in_gc = max(ended - max(began, now - stuck), 0.0)
        waited = self._cpu_wait() - self._cpu_wait_at_beat
        frame = self._frame()  # one look, for the stack and the route alike
        stack = self._stack(frame)
        culprit: dict[str, object]
        if handle is not None:
            culprit = {"task": handle.name, "task_id": handle.id, "route": handle.route}
        else:
            culprit = {"task": None, "route": self._request_route(frame)}
        log.logger.warning(
            log.LOOP_BLOCKED,
            stuck_ms=ms(stuck),
            threshold_ms=ms(self.threshold_s),
            gc_ms=ms(in_gc),
            cpu_wait_ms=ms(waited),
            **culprit,
            stack="".join(stack.format()) if stack else "",
            hint=(
                log.GC_PAUSE_HINT
                if in_gc >= stuck / 2
                else log.CPU_WAIT_HINT
                if waited >= stuck / 2
                else log.BLOCKING_HINT
            ),
        )
