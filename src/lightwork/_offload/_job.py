"""``Job`` (a call prepared for ``offload()``) and ``JobRef`` (what ``offload()`` returns)."""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from .._core._exceptions import TaskError
from .._core._options import check_duration
from ._backend import JobStatus
from ._exceptions import JobFailedError, JobNotFoundError, ResultTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._core._handle import TaskHandle
    from ._backend import JobSnapshot, OffloadBackend

P = ParamSpec("P")
T = TypeVar("T")

_POLL_FIRST_S = 0.01
_POLL_MAX_S = 0.5


class _JobKeeper(Protocol):
    """What a ``JobRef`` asks of the ``Offloader`` that made it."""

    @property
    def backend(self) -> OffloadBackend: ...
    async def _snapshot(self, job_id: str, delivery: TaskHandle[Any] | None) -> JobSnapshot: ...
    async def _cancel(self, job_id: str, delivery: TaskHandle[Any] | None) -> bool: ...


class Job(Generic[T]):
    """A job's function (or name) and its arguments, for ``offload()`` with options.

    ``background.offload(fn, *args, **kwargs)`` passes every keyword to the job; to set
    lightwork's options as well, prepare the call with ``Job`` first, in the way
    ``add_task(coro, name=...)`` takes a coroutine object:

    Example:
        ```python
        background.offload(
            Job(resize_image, "cat.png", width=200),
            job_id=f"resize:{image_id}",  # an idempotency key
            delay=5,
            options={"queue": "images"},  # the engine's own options
        )
        ```
    """

    __slots__ = ("args", "kwargs", "target")

    @overload
    def __init__(
        self: Job[T], target: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> None: ...
    @overload
    def __init__(
        self: Job[T], target: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> None: ...
    @overload
    def __init__(self: Job[Any], target: str, /, *args: Any, **kwargs: Any) -> None: ...
    def __init__(self, target: Any, /, *args: Any, **kwargs: Any) -> None:
        self.target: str | Callable[..., Any] = target
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        target = self.target if isinstance(self.target, str) else self.target.__qualname__
        return f"<Job {target!r} args={len(self.args)} kwargs={sorted(self.kwargs)}>"


class JobRef(Generic[T]):
    """An offloaded job, as ``offload()`` returns it at once; ask it for the job's fate.

    Every method asks the engine (or the outbox) afresh, with the offloader's call
    timeout, so ``status()`` is never stale. A ref can be rebuilt from a job id, in another
    request or after a restart, with ``offloader.job(job_id)``.

    Example:
        ```python
        ref = background.offload(Job(render_report, month), job_id=f"report:{month}")
        ...
        status = await ref.status()      # JobStatus.RUNNING
        report = await ref.result(timeout=60)
        ```
    """

    __slots__ = ("_delivery", "_offloader", "job_id", "name")

    job_id: str
    """The job's id at the engine: given as ``job_id=``, or generated: 32 random hex digits."""
    name: str
    """The job's registered name (empty for a ref rebuilt from its id alone)."""

    def __init__(
        self,
        offloader: _JobKeeper,
        name: str,
        job_id: str,
        delivery: TaskHandle[Any] | None = None,
    ) -> None:
        self._offloader = offloader
        self.name = name
        self.job_id = job_id
        self._delivery = delivery

    def __repr__(self) -> str:
        return f"<JobRef {self.name!r} job_id={self.job_id!r}>"

    @property
    def _label(self) -> str:
        return f"{self.name!r} ({self.job_id})" if self.name else repr(self.job_id)

    async def status(self) -> JobStatus:
        """Return where the job is now.

        Raises:
            UnsupportedCapabilityError: the engine cannot tell a job's status.
            BackendError: the engine could not be asked (unreachable, or too slow).
        """
        return (await self.snapshot()).status

    async def snapshot(self) -> JobSnapshot:
        """Return the job's status, with its result or error once it has ended, in one call.

        Raises:
            UnsupportedCapabilityError: the engine cannot tell a job's status.
            BackendError: the engine could not be asked (unreachable, or too slow).

        Example:
            ```python
            snapshot = await offloader.job(job_id).snapshot()
            return JSONResponse(dataclasses.asdict(snapshot))  # status, result, error
            ```
        """
        return await self._offloader._snapshot(self.job_id, self._delivery)

    async def result(self, timeout: float | None = 30.0) -> T:  # noqa: ASYNC109 -- bounded by default
        """Wait for the job to end and return its result, decoded from JSON.

        Args:
            timeout: seconds to wait, or ``None`` to wait as long as it takes.

        Raises:
            JobFailedError: the job failed, was cancelled, or was never delivered.
            JobNotFoundError: the engine does not know the job (its record expired?).
            ResultTimeoutError: the job had not ended within *timeout* seconds.
            UnsupportedCapabilityError: the engine does not keep results.
        """
        check_duration("timeout", timeout)
        offloader = self._offloader
        if not offloader.backend.capabilities.result:
            raise offloader.backend.unsupported("return job results")
        interval = _POLL_FIRST_S
        try:
            async with asyncio.timeout(timeout):
                while True:
                    snapshot = await self.snapshot()
                    if snapshot.status.done or snapshot.status is JobStatus.UNKNOWN:
                        return self._outcome(snapshot)
                    await asyncio.sleep(interval)
                    interval = min(interval * 2, _POLL_MAX_S)
        except TimeoutError as exc:
            raise ResultTimeoutError(f"job {self._label} had not ended after {timeout}s") from exc

    def _outcome(self, snapshot: JobSnapshot) -> T:
        status = snapshot.status
        if status is JobStatus.COMPLETED:
            return cast("T", snapshot.result)
        if status is JobStatus.UNKNOWN:
            raise JobNotFoundError(
                f"the engine does not know job {self._label}: it was never "
                "enqueued there, or its record has expired"
            )
        error = snapshot.error or ""
        summary = error.strip().splitlines()[-1] if error.strip() else "no details"
        raise JobFailedError(
            f"job {self._label} ended {status}: {summary}",
            job=self.name,
            job_id=self.job_id,
            status=status,
            error=error,
        )

    async def cancel(self) -> bool:
        """Cancel the job; return ``False`` if it had already ended.

        A job not handed over yet is never sent; one in the outbox is removed from it; one
        the engine has is cancelled there, where the engine can (see its capabilities).

        Raises:
            UnsupportedCapabilityError: the engine has the job and cannot cancel jobs.
        """
        return await self._offloader._cancel(self.job_id, self._delivery)


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
