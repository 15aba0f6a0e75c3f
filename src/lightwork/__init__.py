"""lightwork: asyncio-native background tasks for Starlette and FastAPI.

Light I/O work runs detached on the event loop, with a timeout, callbacks, and a warning
when it runs slow; see the docs for the full guide.
"""

from ._background import Background, get_background, with_background
from ._definitions import task
from ._exceptions import (
    BackgroundNotInstalledError,
    LightworkError,
    SchedulerClosedError,
    TaskCancelledError,
    TaskDroppedError,
    TaskError,
    TaskTimeoutError,
)
from ._handle import TaskHandle, TaskState
from ._middleware import BackgroundMiddleware
from ._scheduler import Scheduler
from ._types import RunIf, StartPolicy

__version__ = "0.1.0"

__all__ = [
    "Background",
    "BackgroundMiddleware",
    "BackgroundNotInstalledError",
    "LightworkError",
    "RunIf",
    "Scheduler",
    "SchedulerClosedError",
    "StartPolicy",
    "TaskCancelledError",
    "TaskDroppedError",
    "TaskError",
    "TaskHandle",
    "TaskState",
    "TaskTimeoutError",
    "__version__",
    "get_background",
    "task",
    "with_background",
]
