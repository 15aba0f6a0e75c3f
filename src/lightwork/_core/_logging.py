"""Log event names, defined once, and the logger lightwork writes them to.

lightwork never configures logging: it logs through ``structlog.get_logger("lightwork")``
and leaves processors, renderers and levels to the application, to which it offers one
processor, ``lightwork.add_log_fields``.
"""

from __future__ import annotations

import logging
from contextvars import Context, ContextVar
from typing import Any, Final

import structlog

LOGGER_NAME: Final = "lightwork"

TASK_COMPLETED: Final = "background_task_completed"
TASK_FAILED: Final = "background_task_failed"
TASK_TIMED_OUT: Final = "background_task_timed_out"
TASK_CANCELLED: Final = "background_task_cancelled"
TASK_DROPPED: Final = "background_task_dropped"
TASK_OFFLOADED: Final = "background_task_offloaded"
TASK_OFFLOAD_REFUSED: Final = "background_task_offload_refused"
TASK_SLOW: Final = "background_task_slow"
TASK_BLOCKING: Final = "background_task_blocking"
TASK_TIMEOUT_IGNORED: Final = "background_task_timeout_ignored"
LOOP_BLOCKED: Final = "event_loop_blocked"
TASK_ABANDONED: Final = "background_task_abandoned"
CALLBACK_FAILED: Final = "background_callback_failed"
CALLBACK_CANCELLED: Final = "background_callback_cancelled"
CALLBACK_ABANDONED: Final = "background_callback_abandoned"
SCHEDULER_STARTED: Final = "background_scheduler_started"
SCHEDULER_CLOSED: Final = "background_scheduler_closed"

SLOW_HINT: Final = (
    "this task holds a slot on the web server's event loop for long; "
    "move heavy or CPU-bound work to a job queue (lightwork's offload bridge)"
)
"""For a slow task whose steps held the loop: it computes, so it belongs elsewhere."""

SLOW_WAITING_HINT: Final = (
    "this task spent its time waiting, not computing: give it a timeout that fits what it "
    "waits for, cap how many of its name run at once (limits=...), or raise its "
    "slow_threshold if such waits are expected"
)
"""For a slow task that only awaited: offloading would not make its waits shorter."""

TIMEOUT_IGNORED_HINT: Final = (
    "the task went on past its timeout: it caught the cancellation; "
    "let asyncio.CancelledError propagate"
)

BLOCKING_HINT: Final = (
    "this task computed on the event loop without awaiting, and every request waited for it; "
    "run CPU-bound work in a process (lightwork's offload bridge) or at least a thread"
)

GC_PAUSE_HINT: Final = (
    "the garbage collector holds the loop: a full collection walks every long-lived object; "
    "keep fewer of them (a task must not hold its request), or call gc.freeze() once the "
    "app has started"
)

CPU_WAIT_HINT: Final = (
    "the event loop's thread was waiting for a CPU: the machine or the container runs more "
    "than its cores can (check its CPU limit and what else runs there), not this code"
)

_structlog_logger: Final = structlog.get_logger(LOGGER_NAME)
_fallback: Final = logging.getLogger(LOGGER_NAME)


class _Logger:
    """structlog's logger for lightwork, except that failing to log never breaks anything.

    A processor of the app's that raises must not fail a task's end, break a task's step
    or reach the request: the event then goes to stdlib logging, with what went wrong.
    """

    __slots__ = ()

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    @staticmethod
    def _emit(level: str, event: str, fields: dict[str, Any]) -> None:
        try:
            getattr(_structlog_logger, level)(event, **fields)
        except Exception as exc:  # noqa: BLE001 -- the app's logging is broken: say so elsewhere
            about = f" (task {fields['task']})" if "task" in fields else ""
            _fallback.error(
                "lightwork could not log %s%s: %s: %s", event, about, type(exc).__name__, exc
            )


logger: Final = _Logger()


def structlog_var(key: str) -> ContextVar[Any]:
    """Return the context variable structlog keeps for *key*, to set it without a lookup."""
    scratch = Context()
    scratch.run(structlog.contextvars.bind_contextvars, **{key: None})
    [var] = (v for v in scratch if v.name == f"{structlog.contextvars.STRUCTLOG_KEY_PREFIX}{key}")
    return var


def debug_enabled() -> bool:
    """Tell whether lightwork's debug events would be emitted under the current configuration.

    Checked once when a scheduler starts, so that the per-task ``background_task_completed``
    event costs nothing when debug logging is off.
    """
    bound: Any = _structlog_logger.bind()
    if hasattr(bound, "is_enabled_for"):  # structlog's own filtering loggers
        return bool(bound.is_enabled_for(logging.DEBUG))
    if hasattr(bound, "isEnabledFor"):  # structlog.stdlib.BoundLogger
        return bool(bound.isEnabledFor(logging.DEBUG))
    return True
