"""lightwork: asyncio-native background tasks for Starlette and FastAPI.

Light I/O work runs detached on the event loop, with a timeout, callbacks, and a warning
when it runs slow; see the docs for the full guide.
"""

import sys

# First: with LIGHTWORK_NO_EXTENSIONS=1, it makes every import below take the .py source.
from . import _extensions

# isort: split
from ._asgi._background import Background, get_background
from ._asgi._context import add_log_fields, current_request_id
from ._asgi._endpoints import queue_full_response, with_background
from ._asgi._exceptions import BackgroundNotInstalledError
from ._asgi._middleware import BackgroundMiddleware
from ._core._admission import Overflow
from ._core._decorator import task
from ._core._exceptions import (
    BackgroundQueueFull,
    LightworkError,
    SchedulerClosedError,
    TaskCancelledError,
    TaskDroppedError,
    TaskError,
    TaskTimeoutError,
)
from ._core._handle import TaskHandle, TaskState
from ._core._shutdown import PendingAtShutdown
from ._core._types import RunIf, StartPolicy
from ._offload._backend import JobSnapshot, JobStatus
from ._offload._exceptions import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    JobFailedError,
    JobNotFoundError,
    JobNotRegisteredError,
    OffloadError,
    OffloadPayloadError,
    ResultTimeoutError,
    UnsupportedCapabilityError,
)
from ._offload._job import Job, JobRef, TaskOffloadedError
from ._offload._offloader import Offloader
from ._offload._outbox import DeadLetter, Outbox
from ._offload._registry import current_job_id, offloadable
from ._offload._scheduler import Scheduler
from ._version import __version__

compiled: bool = _extensions.is_compiled(sys.modules[Scheduler.__module__])
"""Whether this process runs lightwork's compiled core (built by mypyc), not the Python one."""

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "Background",
    "BackgroundMiddleware",
    "BackgroundNotInstalledError",
    "BackgroundQueueFull",
    "DeadLetter",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "JobNotRegisteredError",
    "JobRef",
    "JobSnapshot",
    "JobStatus",
    "LightworkError",
    "OffloadError",
    "OffloadPayloadError",
    "Offloader",
    "Outbox",
    "Overflow",
    "PendingAtShutdown",
    "ResultTimeoutError",
    "RunIf",
    "Scheduler",
    "SchedulerClosedError",
    "StartPolicy",
    "TaskCancelledError",
    "TaskDroppedError",
    "TaskError",
    "TaskHandle",
    "TaskOffloadedError",
    "TaskState",
    "TaskTimeoutError",
    "UnsupportedCapabilityError",
    "__version__",
    "add_log_fields",
    "compiled",
    "current_job_id",
    "current_request_id",
    "get_background",
    "offloadable",
    "queue_full_response",
    "task",
    "with_background",
]
