"""Every exception lightwork raises.

The tree::

    LightworkError
    ├── BackgroundNotInstalledError (LookupError)
    ├── MissingDependencyError (ImportError)
    ├── SchedulerClosedError (RuntimeError)
    └── TaskError
        ├── TaskTimeoutError (TimeoutError)
        ├── TaskCancelledError
        └── TaskDroppedError

A task's own exception is never wrapped: ``on_error`` and ``await handle`` see it as raised.
"""

from __future__ import annotations


class LightworkError(Exception):
    """Raised for every error that lightwork itself reports; the root of the tree above."""


class BackgroundNotInstalledError(LightworkError, LookupError):
    """Raised when a request has no background handle because BackgroundMiddleware is missing."""


class MissingDependencyError(LightworkError, ImportError):
    """Raised when an optional feature's extra is not installed; says what to install."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs an optional dependency: pip install 'lightwork[{extra}]'"
        )


class SchedulerClosedError(LightworkError, RuntimeError):
    """Raised when a task is added to a scheduler that is shutting down or has shut down."""


class TaskError(LightworkError):
    """Raised when a background task ends without a result for a reason of lightwork's own."""

    def __init__(self, message: str, *, task: str, task_id: int) -> None:
        super().__init__(message)
        self.task = task
        self.task_id = task_id


class TaskTimeoutError(TaskError, TimeoutError):
    """Raised when a task ran past its timeout and was cancelled."""


class TaskCancelledError(TaskError):
    """Raised when a task was cancelled, by ``handle.cancel()`` or at shutdown."""


class TaskDroppedError(TaskError):
    """Raised when a task never started: its request failed, or the scheduler had closed."""
