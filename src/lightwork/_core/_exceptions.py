"""Every exception lightwork raises, and those of the core.

Each layer defines the exceptions it raises: the core these, the offload bridge the
``OffloadError`` branch (``lightwork._offload._exceptions``) and ``TaskOffloadedError``
(beside the ``JobRef`` it carries, in ``lightwork._offload._job``), the ASGI layer
``BackgroundNotInstalledError`` (``lightwork._asgi._exceptions``); ``lightwork`` exports them
all. The tree::

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


class LightworkError(Exception):
    """Raised for every error that lightwork itself reports; the root of the tree above."""


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


class TaskDroppedError(TaskError):
    """Raised when a task never started: its request failed or its queue was full.

    Also when its response did not suit its ``run_if``, or the scheduler closed first.
    """
