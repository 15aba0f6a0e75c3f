"""Log event names, defined once, and the logger lightwork writes them to.

lightwork never configures logging: it logs through ``structlog.get_logger("lightwork")``
and leaves processors, renderers and levels to the application.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import structlog

LOGGER_NAME: Final = "lightwork"

TASK_COMPLETED: Final = "background_task_completed"
TASK_FAILED: Final = "background_task_failed"
TASK_TIMED_OUT: Final = "background_task_timed_out"
TASK_CANCELLED: Final = "background_task_cancelled"
TASK_DROPPED: Final = "background_task_dropped"
TASK_SLOW: Final = "background_task_slow"
TASK_ABANDONED: Final = "background_task_abandoned"
CALLBACK_FAILED: Final = "background_callback_failed"
SCHEDULER_STARTED: Final = "background_scheduler_started"
SCHEDULER_CLOSED: Final = "background_scheduler_closed"

SLOW_HINT: Final = (
    "this task holds a slot on the web server's event loop for long; "
    "move heavy or CPU-bound work to a job queue (lightwork's offload bridge)"
)

logger: Final = structlog.get_logger(LOGGER_NAME)


def debug_enabled() -> bool:
    """Tell whether lightwork's debug events would be emitted under the current configuration.

    Checked once when a scheduler starts, so that the per-task ``background_task_completed``
    event costs nothing when debug logging is off.
    """
    bound: Any = logger.bind()
    if hasattr(bound, "is_enabled_for"):  # structlog's own filtering loggers
        return bool(bound.is_enabled_for(logging.DEBUG))
    if hasattr(bound, "isEnabledFor"):  # structlog.stdlib.BoundLogger
        return bool(bound.isEnabledFor(logging.DEBUG))
    return True
