"""The offload bridge's exceptions: the ``OffloadError`` branch of the tree.

The tree is drawn in ``lightwork._core._exceptions``; ``TaskOffloadedError``, which carries
a ``JobRef``, is defined beside it in ``lightwork._offload._job``.
"""

from __future__ import annotations

from .._core._exceptions import LightworkError


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
