"""Every exception lightwork raises.

The tree::

    LightworkError
    ├── BackgroundNotInstalledError (LookupError)
    ├── MissingDependencyError (ImportError)
    ├── BackgroundQueueFull (RuntimeError)
    ├── SchedulerClosedError (RuntimeError)
    ├── TaskError
    │   ├── TaskTimeoutError (TimeoutError)
    │   ├── TaskCancelledError
    │   ├── TaskOffloadedError
    │   └── TaskDroppedError
    └── OffloadError
        ├── JobNotRegisteredError (LookupError)
        ├── OffloadPayloadError (ValueError)
        ├── UnsupportedCapabilityError (NotImplementedError)
        ├── BackendError
        │   ├── BackendUnavailableError (ConnectionError)
        │   └── BackendTimeoutError (TimeoutError)
        ├── JobFailedError
        ├── JobNotFoundError (LookupError)
        └── ResultTimeoutError (TimeoutError)

A task's own exception is never wrapped: ``on_error`` and ``await handle`` see it as raised.
An offloaded job runs in another process, so its exception comes back as text in
:class:`JobFailedError`; an engine's own exceptions are translated into :class:`BackendError`
at the adapter's boundary, with the original as ``__cause__``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._offload._job import JobRef


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


class BackgroundQueueFull(LightworkError, RuntimeError):  # noqa: N818 -- reads as a state
    """Raised when ``add_task`` finds the scheduler's queue full.

    With ``overflow="reject"`` or ``"wait"`` (``add_task_wait`` waits instead), and with
    ``"offload"`` for a task that is not an ``@offloadable`` function's.
    """

    retry_after = 1
    """Seconds a client may wait before trying again; ``queue_full_response`` sends it."""


class SchedulerClosedError(LightworkError, RuntimeError):
    """Raised when a task is added to a scheduler that is shutting down or has shut down."""


class TaskError(LightworkError):
    """Raised when a background task ends without a result for a reason of lightwork's own."""

    def __init__(self, message: str, *, task: str, task_id: int) -> None:
        super().__init__(message)
        self.task = task
        self.task_id = task_id

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable like a plain exception, despite the keyword-only arguments.
        return functools.partial(type(self), task=self.task, task_id=self.task_id), (str(self),)


class TaskTimeoutError(TaskError, TimeoutError):
    """Raised when a task ran past its timeout and was cancelled."""


class TaskCancelledError(TaskError):
    """Raised when a task was cancelled, by ``handle.cancel()`` or at shutdown."""


class TaskOffloadedError(TaskError):
    """Raised when awaiting a task that went to the offload bridge; ``job`` follows it there."""

    def __init__(
        self, message: str, *, task: str, task_id: int, job: JobRef[Any] | None = None
    ) -> None:
        super().__init__(message, task=task, task_id=task_id)
        self.job = job
        """The job's ``JobRef``: ``await error.job.result()`` where the engine keeps results."""

    def __reduce__(self) -> tuple[object, ...]:
        return functools.partial(type(self), task=self.task, task_id=self.task_id), (str(self),)


class TaskDroppedError(TaskError):
    """Raised when a task never started: its request failed or its queue was full.

    Also when its response did not suit its ``run_if``, or the scheduler closed first.
    """


class OffloadError(LightworkError):
    """Raised for every error of the offload bridge; the root of its branch of the tree."""


class JobNotRegisteredError(OffloadError, LookupError):
    """Raised when a job is offloaded by a name or function that no ``@offloadable`` registered."""


class OffloadPayloadError(OffloadError, ValueError):
    """Raised when a job's arguments are not JSON-serialisable or make too large a payload."""


class UnsupportedCapabilityError(OffloadError, NotImplementedError):
    """Raised when a job asks its backend for something the engine cannot do (delay, result...)."""


class BackendError(OffloadError):
    """Raised when the engine behind a backend failed a call; the engine's error is the cause."""


class BackendUnavailableError(BackendError, ConnectionError):
    """Raised when the engine cannot be reached; jobs are kept in the outbox meanwhile."""


class BackendTimeoutError(BackendError, TimeoutError):
    """Raised when the engine did not answer a call within its timeout."""


class JobFailedError(OffloadError):
    """Raised by ``await ref.result()`` when the job did not complete: it failed or was cancelled.

    ``status`` says which; ``error`` is the engine's account of it (a traceback, as text).
    """

    def __init__(self, message: str, *, job: str, job_id: str, status: str, error: str) -> None:
        super().__init__(message)
        self.job = job
        self.job_id = job_id
        self.status = status
        self.error = error

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable like a plain exception, e.g. to cross a process pool.
        return _rebuild_job_failed, (str(self), self.job, self.job_id, self.status, self.error)


class JobNotFoundError(OffloadError, LookupError):
    """Raised when the engine does not know a job id: never enqueued, or its record expired."""


class ResultTimeoutError(OffloadError, TimeoutError):
    """Raised when a job had not ended by the time ``await ref.result()`` was willing to wait."""


def _rebuild_job_failed(
    message: str, job: str, job_id: str, status: str, error: str
) -> JobFailedError:
    return JobFailedError(message, job=job, job_id=job_id, status=status, error=error)
