"""The public ``Scheduler``: the core's scheduler with the offload bridge plugged in.

The core knows the bridge only as an ``OffloadPort``; here it is given a real ``Offloader``
(by default the local process pool), and ``offload()`` joins ``add_task`` on every source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from .._core._scheduler import Scheduler as CoreScheduler
from .._core._source import TaskSource
from ._offloader import Offloader, offloader_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from typing import Unpack

    from .._core._scheduler import SchedulerOptions
    from ._backend import JSONValue, OffloadBackend
    from ._job import Job, JobRef

P = ParamSpec("P")
T = TypeVar("T")


class OffloadingSource(TaskSource):
    """A task source that can also ``offload()``: a ``Scheduler``, or a request's ``Background``."""

    __slots__ = ()

    @property
    def _offloader(self) -> Offloader:
        return cast("Offloader", self._scheduler.offloader)  # what Scheduler below is given

    @overload
    def offload(
        self,
        job: Job[T],
        /,
        *,
        job_id: str | None = None,
        delay: float | None = None,
        priority: int | None = None,
        options: Mapping[str, JSONValue] | None = None,
    ) -> JobRef[T]: ...
    @overload
    def offload(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> JobRef[T]: ...
    @overload
    def offload(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> JobRef[T]: ...
    @overload
    def offload(self, name: str, /, *args: Any, **kwargs: Any) -> JobRef[Any]: ...
    def offload(self, target: Any, /, *args: Any, **kwargs: Any) -> JobRef[Any]:
        """Send a job to the app's offload backend, off the request path; return its ref at once.

        The arguments are checked (against the function's signature, for JSON, for size) at
        the call; the hand-off to the engine is a background task like any other, so a slow
        or unreachable engine never delays the response (the job then waits in the outbox).

        Two forms, as for ``add_task``:

        - ``offload(fn_or_name, *args, **kwargs)``: every argument goes to the job.
        - ``offload(Job(fn_or_name, *args, **kwargs), *, job_id=, delay=, priority=,
          options=)``: the keywords are lightwork's options. ``job_id`` is an idempotency
          key (the same id runs once where the engine dedups); ``options`` are the engine's
          own (queue, retries...).

        Raises:
            JobNotRegisteredError: no ``@offloadable`` job has that name or function.
            OffloadPayloadError: an argument cannot be sent as JSON, or the payload is too big.
            UnsupportedCapabilityError: the engine cannot honour ``delay``, ``priority`` or
                one of the ``options``.
            TypeError: the arguments do not fit the job's signature.

        Example:
            ```python
            ref = background.offload(resize_image, "cat.png", width=200)
            ref = background.offload(Job(resize_image, "cat.png", width=200), job_id="img-42")
            ```
        """
        return self._offloader._offload(self, target, args, kwargs)


class Scheduler(OffloadingSource, CoreScheduler):
    __doc__ = CoreScheduler.__doc__

    offloader: Offloader
    """Where ``offload()`` sends jobs: the ``offload=`` argument, or the local process pool."""

    def __init__(
        self,
        *,
        offload: Offloader | OffloadBackend | None = None,
        **options: Unpack[SchedulerOptions],
    ) -> None:
        super().__init__(offload=offloader_for(offload), **options)
