"""The offload bridge's exceptions: ``TaskOffloadedError`` and the ``OffloadError`` branch.

Drawn in the tree of ``lightwork._core._exceptions``, whose ``TaskError`` and
``LightworkError`` these derive from.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .._core._exceptions import LightworkError, TaskError

if TYPE_CHECKING:
    from ._job import JobRef


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
