"""What lightwork logs about each task: the fields every event shares, and one function per event.

Event names and hints live in ``_logging``; this module decides which fields each carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _logging as log
from ._handle import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._handle import TaskHandle


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to a tenth: the unit of every ``*_ms`` field."""
    return round(seconds * 1000, 1)


def task_fields(handle: TaskHandle[Any], elapsed: float | None = None) -> dict[str, Any]:
    """Return the fields every task event carries: name, id, time so far, and arguments.

    Arguments only when the scheduler was asked to log them (``log_args=True``).
    """
    fields: dict[str, Any] = {"task": handle.name, "task_id": handle.id}
    if elapsed is None and handle._ended_at != 0.0:  # ended: its whole time
        elapsed = handle._ended_at - handle._started_at
    if elapsed is not None:
        fields["duration_ms"] = ms(elapsed)
    if handle._args is not None:
        fields["args"] = handle._args
    return fields


def report_slow(handle: TaskHandle[Any], elapsed: float) -> None:
    assert handle.slow_threshold is not None
    log.logger.warning(
        log.TASK_SLOW,
        **task_fields(handle, elapsed),
        threshold_ms=ms(handle.slow_threshold),
        blocked_ms=ms(handle.longest_step),
        total_blocked_ms=ms(handle.blocked),
        hint=log.SLOW_HINT if held_the_loop(handle, elapsed) else log.SLOW_WAITING_HINT,
    )


def held_the_loop(handle: TaskHandle[Any], elapsed: float) -> bool:
    """Tell whether a task's steps, not its waits, made it slow.

    A step past the task's blocking threshold says so, and so does computing for a quarter
    of the time it has run, in steps too short to cross that threshold one by one.
    """
    threshold = handle.block_threshold
    return (threshold is not None and handle.longest_step >= threshold) or (
        handle.blocked >= elapsed / 4
    )


def report_timeout_ignored(handle: TaskHandle[Any], elapsed: float) -> None:
    log.logger.warning(
        log.TASK_TIMEOUT_IGNORED,
        **task_fields(handle, elapsed),
        timeout_s=handle.timeout,
        hint=log.TIMEOUT_IGNORED_HINT,
    )


def report_blocking(handle: TaskHandle[Any], step: float, threshold: float, stack: str) -> None:
    """Log a step that held the loop; *stack* (where sampling found it) only if there is one."""
    where = {"stack": stack} if stack else {}
    log.logger.warning(
        log.TASK_BLOCKING,
        task=handle.name,
        task_id=handle.id,
        blocked_ms=ms(step),
        total_blocked_ms=ms(handle.blocked),
        threshold_ms=ms(threshold),
        route=handle.route,
        **where,
        hint=log.BLOCKING_HINT,
    )


def report_end(
    handle: TaskHandle[Any], state: TaskState, outcome: object, reason: str | None
) -> None:
    """Log a task's terminal state, once; a completed one at debug level."""
    fields = task_fields(handle)
    if state is TaskState.COMPLETED and handle._cancel_reason == "timeout":
        log.logger.warning(
            log.TASK_COMPLETED, **fields, timeout_s=handle.timeout, hint=log.TIMEOUT_IGNORED_HINT
        )
    elif state is TaskState.COMPLETED:
        log.logger.debug(log.TASK_COMPLETED, **fields)
    elif state is TaskState.FAILED:
        log.logger.error(log.TASK_FAILED, **fields, exc_info=outcome)
    elif state is TaskState.TIMED_OUT:
        log.logger.warning(log.TASK_TIMED_OUT, **fields, timeout_s=handle.timeout)
    elif state is TaskState.CANCELLED:
        log.logger.warning(log.TASK_CANCELLED, **fields, reason=reason)
    elif state is TaskState.OFFLOADED:
        job = getattr(outcome, "job", None)
        log.logger.info(
            log.TASK_OFFLOADED, **fields, reason=reason, job_id=getattr(job, "job_id", None)
        )
    else:
        log.logger.warning(log.TASK_DROPPED, **fields, reason=reason)


def report_callback_error(
    handle: TaskHandle[Any], callback: Callable[[Any], object], exc: Exception
) -> None:
    log.logger.error(
        log.CALLBACK_FAILED,
        **task_fields(handle),
        callback=getattr(callback, "__qualname__", repr(callback)),
        exc_info=exc,
    )


def report_callback_cancelled(handle: TaskHandle[Any], callback: Callable[[Any], object]) -> None:
    log.logger.warning(
        log.CALLBACK_CANCELLED,
        **task_fields(handle),
        callback=getattr(callback, "__qualname__", repr(callback)),
        reason="shutdown",
    )


def report_abandoned(handle: TaskHandle[Any]) -> None:
    log.logger.error(log.TASK_ABANDONED, **task_fields(handle))


def report_abandoned_callback(name: str) -> None:
    log.logger.error(log.CALLBACK_ABANDONED, callback=name)
