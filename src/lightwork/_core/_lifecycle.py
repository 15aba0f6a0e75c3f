"""A task's life once started: its clock and deadlines, its steps, its end, its callbacks.

``Lifecycle`` is the part of the scheduler that every task goes through on the loop;
``Shutdown`` adds how tasks stop when the app does, and the ``Scheduler`` when they start.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from contextvars import Context
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol

from . import _logging as log
from . import _monitor
from ._awaiting import await_callback
from ._exceptions import TaskCancelledError, TaskDroppedError, TaskError, TaskTimeoutError
from ._handle import (
    COMPLETED,
    HOLDS_SLOT,
    PENDING,
    RUNNING,
    SLOW_LOGGED,
    TaskHandle,
    TaskOwner,
    TaskState,
)
from ._reporting import (
    report_blocking,
    report_callback_cancelled,
    report_callback_error,
    report_end,
    report_slow,
    report_timeout_ignored,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._admission import Admission
    from ._deadlines import Deadlines
    from ._stats import TaskStats
    from ._watchdog import LoopWatchdog

_EMPTY_CONTEXT: Final = Context()  # replaces an ended task's context, so it can be freed

TIMEOUT_GRACE_S = 1.0  # not Final, which mypyc would compile in: tests shorten it
"""How long after cancelling a task at its timeout lightwork checks that it has ended."""


class TaskObserver(Protocol):
    """Told of every task any scheduler accepts, starts and ends (testing, tracing).

    ``task_started`` runs inside the task's own context, on its first step;
    ``task_ended`` after the task's callback, async ones included, has run.
    """

    def task_added(self, handle: TaskHandle[Any], /) -> None: ...
    def task_started(self, handle: TaskHandle[Any], /) -> None: ...
    def task_ended(self, handle: TaskHandle[Any], /) -> None: ...


observers: Final[list[TaskObserver]] = []
"""Final, though added to and removed from: compiled, a Final is a C static, where a module
global is a dict look-up at each of the three reads every task makes."""


class Lifecycle(TaskOwner):
    """Timing, deadlines, ending and callbacks of started tasks; mixed into ``Scheduler``."""

    _deadlines: Deadlines
    _stats: TaskStats
    _admission: Admission | None
    _running: set[TaskHandle[Any]]
    _starting: list[TaskHandle[Any]]
    _callbacks: set[asyncio.Task[None]]
    _debug: bool
    time_steps: bool
    watchdog: LoopWatchdog | None

    def _start_queued(self) -> None:
        raise NotImplementedError

    def _on_first_step(self, handle: TaskHandle[Any], now: float) -> None:
        """Start the clock."""
        handle._started_at = now
        self._stats.started(handle)
        if observers:
            for observer in tuple(observers):  # one may remove itself as it is told
                observer.task_started(handle)

    def _on_first_wait(self, handle: TaskHandle[Any]) -> None:
        """Arm the first timer, counted from the first step: the slow warning, else the timeout.

        Only once the task first waits (or, with the compiled driver, once the loop turns
        after its first step: ``_arm_soon``): one that ends in its first step needs no timer
        (and could not be stopped in the middle of that step anyway).
        """
        slow, timeout = handle.slow_threshold, handle.timeout
        delay = slow if slow is not None and (timeout is None or slow < timeout) else timeout
        if delay is not None:
            self._deadlines.arm(handle, handle._started_at + delay)

    def _arm_soon(self, handle: TaskHandle[Any]) -> None:
        """Arm *handle*'s first timer at the loop's next turn, if it is still running then.

        For the compiled driver, which has no code between a task's first step and the wait
        it ends in: one call at the next turn arms all the tasks that started in this one,
        and a task that ended in its first step needs none (arming and disarming it cost
        more than the rest of its end, when each task has a new bucket).
        """
        if handle.slow_threshold is None and handle.timeout is None:
            return
        starting = self._starting
        if not starting:
            assert self._loop is not None
            # In a copy of the current context, for one turn: a context given by keyword
            # costs uvloop's call_soon() a parse of its keywords (4,000 instructions a task
            # when each request adds one).
            self._loop.call_soon(self._arm_started)
        starting.append(handle)

    def _arm_started(self) -> None:
        starting, self._starting = self._starting, []
        for handle in starting:
            if handle.state is RUNNING:
                self._on_first_wait(handle)

    def _on_longest_step(self, handle: TaskHandle[Any], step: float, stack: str = "") -> None:
        """Report a step that is the task's longest yet, if it held the loop past the threshold.

        *stack* is where the watchdog's sampling found the task during that step.
        """
        threshold = handle.block_threshold
        if threshold is not None and step >= threshold:
            if handle.longest_step < threshold:  # counted once per task, reported per longer step
                self._stats.warned(handle, log.TASK_BLOCKING)
            report_blocking(handle, step, threshold, stack)
        handle.longest_step = step

    def _on_sampled_block(
        self, handle: TaskHandle[Any], held: float, stack: str, context: Context
    ) -> None:
        """Charge a task the watchdog's sampling found holding the loop, now that it let go.

        *context* is a copy of the task's own, taken during the step: the report carries
        the request's ``request_id`` even if the task ended in that step.
        """
        handle.blocked += held
        if held > handle.longest_step:
            context.run(self._on_longest_step, handle, held, stack)

    def _on_timer(self, handle: TaskHandle[Any]) -> None:
        task = handle._task
        if task is None or task.done():
            return
        started, slow, timeout = handle._started_at, handle.slow_threshold, handle.timeout
        elapsed = perf_counter() - started
        if (
            not handle._flags & SLOW_LOGGED
            and slow is not None
            and (timeout is None or slow < timeout)
        ):
            if elapsed < slow:  # a loop timer may fire a little early
                self._deadlines.arm(handle, started + slow)
                return
            self._report_slow(handle, elapsed)
            if timeout is not None:
                self._deadlines.arm(handle, started + timeout)
        elif timeout is not None and elapsed < timeout:
            self._deadlines.arm(handle, started + timeout)
        elif handle._cancel_reason == "timeout":  # cancelled a grace period ago, still running
            report_timeout_ignored(handle, elapsed)
        else:
            self._cancel(handle, "timeout")
            if handle._cancel_reason == "timeout":  # not cancelled before: see that it ends
                self._deadlines.arm(handle, perf_counter() + TIMEOUT_GRACE_S)

    def _report_slow(self, handle: TaskHandle[Any], elapsed: float) -> None:
        watchdog = self.watchdog
        if watchdog is not None and watchdog._sampled is not None:  # charge a hold first,
            watchdog.settle()  # for the warning's figures and hint, if its timer came first
        handle._flags |= SLOW_LOGGED
        self._stats.warned(handle, log.TASK_SLOW)
        report_slow(handle, elapsed)

    def _cancel(self, handle: TaskHandle[Any], reason: str) -> bool:
        if handle.state is PENDING:
            handle._cancel_reason = reason
            self._close_unstarted(handle, TaskState.CANCELLED, reason)
            return True
        task = handle._task
        if task is None or task.done():
            return False
        if handle._cancel_reason is None:
            handle._cancel_reason = reason
        return task.cancel()

    def _drop(self, handle: TaskHandle[Any], reason: str) -> None:
        if handle.state is TaskState.PENDING:
            self._close_unstarted(handle, TaskState.DROPPED, reason)

    def _close_unstarted(
        self,
        handle: TaskHandle[Any],
        state: TaskState,
        reason: str,
        error: TaskError | None = None,
    ) -> None:
        if self._admission is not None:
            self._admission.forget(handle)
        if handle._coro is not None:
            handle._coro.close()
            handle._coro = None
        handle._job = None
        if error is None:
            error_type = TaskDroppedError if state is TaskState.DROPPED else TaskCancelledError
            error = error_type(
                f"task {handle.name!r} was {state} before it started: {reason}",
                task=handle.name,
                task_id=handle.id,
            )
        handle._context.run(self._finish, handle, state, error, reason)

    def _on_end(
        self, handle: TaskHandle[Any], error: BaseException | None, result: object, end: float
    ) -> None:
        """End a task whose coroutine just returned or raised *error*, in its last step.

        *end* is when that step ended. Runs inside the task's own context, so log events
        carry the request's contextvars.
        """
        if handle._deadline is not None:
            self._deadlines.disarm(handle)
        handle._task = None
        handle._coro = None
        watchdog = self.watchdog
        if watchdog is not None and watchdog._sampled is not None:  # held the loop till now
            watchdog.settle()
        handle._ended_at = end
        duration = end - handle._started_at
        self._running.discard(handle)
        if (
            not handle._flags & SLOW_LOGGED
            and handle.slow_threshold is not None
            and duration >= handle.slow_threshold
        ):
            self._report_slow(handle, duration)
        reason = handle._cancel_reason
        outcome: object
        if error is None:  # most tasks: tested first, for the isinstance() it saves
            state, outcome = COMPLETED, result
        elif isinstance(error, asyncio.CancelledError):
            if reason == "timeout":
                state = TaskState.TIMED_OUT
                outcome = TaskTimeoutError(
                    f"task {handle.name!r} ran past its timeout of {handle.timeout}s",
                    task=handle.name,
                    task_id=handle.id,
                )
            else:
                state, reason = TaskState.CANCELLED, reason or "external"
                outcome = TaskCancelledError(
                    f"task {handle.name!r} was cancelled ({reason})",
                    task=handle.name,
                    task_id=handle.id,
                )
        else:
            state, outcome = TaskState.FAILED, error
        self._finish(handle, state, outcome, reason)
        if handle._flags & HOLDS_SLOT:
            assert self._admission is not None
            self._admission.free_slot(handle.name)
            self._start_queued()

    def _finish(
        self, handle: TaskHandle[Any], state: TaskState, outcome: object, reason: str | None
    ) -> None:
        handle.state = state
        handle._outcome = outcome
        if state is COMPLETED:
            # Checked here: building the event would cost every task.
            if self._debug or handle._cancel_reason == "timeout":
                report_end(handle, state, outcome, reason)
            callback: Callable[[Any], object] | None = handle._on_complete
        else:
            report_end(handle, state, outcome, reason)
            callback = handle._on_error
        awaiting = None if callback is None else self._call_back(handle, callback, outcome)
        self._stats.ended(handle, state)
        if self._waiters:
            waiter = self._waiters.pop(handle, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        handle._context = _EMPTY_CONTEXT
        handle._on_complete = handle._on_error = None
        if observers:
            if awaiting is None:
                _tell_ended(handle)
            else:  # the task's story ends with its async callback
                awaiting.add_done_callback(functools.partial(_tell_ended, handle))

    def _call_back(
        self, handle: TaskHandle[Any], callback: Callable[[Any], object], argument: object
    ) -> asyncio.Task[None] | None:
        """Call a task's callback; return the task awaiting it, if it is async.

        A sync callback holds the loop like a step of the task: timed as one with
        ``time_steps``, else named to the watchdog's sampling as the task's.
        """
        timed = self.time_steps
        start = perf_counter() if timed else 0.0
        sampled = self.watchdog is not None  # the only reader of stepping
        if sampled:
            _monitor.stepping.handle = handle
        try:
            result = callback(argument)
        except Exception as exc:  # noqa: BLE001 -- a user's callback: report, never propagate
            report_callback_error(handle, callback, exc)
            return None
        finally:
            if sampled:
                _monitor.stepping.handle = None
            if timed:
                step = perf_counter() - start
                handle.blocked += step
                if step > handle.longest_step:
                    self._on_longest_step(handle, step)
        if result is None or not inspect.isawaitable(result):  # None: most callbacks
            return None
        try:  # the loop the task ended on: the scheduler's, or one it has not bound to yet
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a task dropped in another thread: no loop here to await it on
            if inspect.iscoroutine(result):
                result.close()
            report_callback_error(
                handle, callback, RuntimeError("an async callback needs the event loop's thread")
            )
            return None
        failed = functools.partial(_callback_failed, handle, callback)
        awaiting = loop.create_task(await_callback(result, failed), name=f"{handle.name} callback")
        self._callbacks.add(awaiting)
        awaiting.add_done_callback(self._callbacks.discard)
        return awaiting


def _callback_failed(
    handle: TaskHandle[Any], callback: Callable[[Any], object], error: BaseException
) -> None:
    if isinstance(error, Exception):
        report_callback_error(handle, callback, error)
    else:  # cancelled
        report_callback_cancelled(handle, callback)


def _tell_ended(handle: TaskHandle[Any], _awaiting: object = None) -> None:
    # A named function, not a lambda in _finish: compiled, a lambda there makes an
    # environment object at every call of _finish, whether or not it is needed.
    for observer in tuple(observers):  # one may remove itself as it is told
        observer.task_ended(handle)
