"""The public ``Scheduler``: the core's scheduler with the offload bridge plugged in.

The core knows the bridge only as an ``OffloadPort``; here it is given a real ``Offloader``
(by default the local process pool), and ``offload()`` joins ``add_task`` on every source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, final, overload

from mypy_extensions import trait

from .._core._scheduler import Scheduler as CoreScheduler
from .._core._source import TaskSource
from ._offloader import Offloader, offloader_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from .._core._admission import Overflow
    from .._core._shutdown import PendingAtShutdown
    from ._backend import OffloadBackend
    from ._job import Job, JobRef
    from ._payload import JSONValue

P = ParamSpec("P")
T = TypeVar("T")


@trait
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


@final  # compiled, it cannot be subclassed: see the guide's "The compiled core"
class Scheduler(CoreScheduler, OffloadingSource):
    """Runs background tasks on the event loop, detached from whoever added them.

    ``BackgroundMiddleware`` makes one per app and starts and closes it with the app's
    lifespan; pass your own to configure it or to add tasks outside requests.

    Args:
        timeout: default seconds a task may run before it is cancelled; ``None`` for no limit.
        slow_threshold: default seconds after which a still-running task is reported as
            slow (``background_task_slow``); ``None`` to never report.
        block_threshold: default seconds a task may hold the event loop at once before it is
            reported as blocking it (``background_task_blocking``); ``None`` to never report.
            Unless ``time_steps``, the scheduler's value is also the watchdog thread's
            sampling threshold, and ``None`` there turns sampling off.
        drain_timeout: seconds that shutdown waits for running tasks before cancelling them.
        max_threads: how many sync callables may run at once in lightwork's own worker
            threads, apart from the pool Starlette uses for sync endpoints.
        log_args: include each task's arguments in its log events (off: they may hold secrets).
        watchdog: seconds the event loop may stay stuck before a watchdog thread logs
            ``event_loop_blocked`` with the loop thread's stack and the task (or request)
            that was running; ``None`` (default): no such report.
        time_steps: time every step of every task, for the exact time each held the loop
            (``blocked``, ``longest_step``, the stats' histogram, and a report at each task's
            own ``block_threshold``), at two clock reads per step. Off (default), a watchdog
            thread samples the loop instead and sees only what holds it past the threshold,
            at no cost per step.
        offload: where ``offload()`` sends jobs: an ``Offloader``, or a backend to make one
            with (default: ``LocalBackend()``, a local process pool).
        max_concurrency: how many tasks may run at once; more wait in a queue, in order.
        max_pending: how many tasks may wait in that queue; past it, ``overflow`` applies.
        limits: how many tasks of a name may run at once, e.g. ``{"send-email": 4}``.
        overflow: what ``add_task`` does when the queue is full: ``"reject"`` (raise
            ``BackgroundQueueFull``), ``"wait"`` (raise it too; ``add_task_wait`` waits for
            room), ``"drop"`` (drop the task, logged) or ``"offload"`` (send a task of an
            ``@offloadable`` function to the offload bridge instead; reject others).
        pending_at_shutdown: what shutdown does with queued tasks that have not started:
            ``"run"`` them as slots free up, until ``drain_timeout``; ``"drop"`` them; or
            ``"spill"`` those of ``@offloadable`` functions to the offload bridge.
        shield_timeout: seconds after shutdown begins that tasks added with ``shield=True``
            are cancelled, if still running; other tasks go at ``drain_timeout``.

    Example:
        ```python
        scheduler = lightwork.Scheduler(timeout=10, slow_threshold=0.25)
        app = Starlette(middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)])

        async with scheduler:  # outside an app, e.g. in a script
            scheduler.add_task(refresh_cache())
        ```
    """

    offloader: Offloader
    """Where ``offload()`` sends jobs: the ``offload=`` argument, or the local process pool."""

    def __init__(
        self,
        *,
        timeout: float | None = 30.0,
        slow_threshold: float | None = 0.1,
        block_threshold: float | None = 0.02,
        drain_timeout: float = 10.0,
        max_threads: int = 10,
        log_args: bool = False,
        watchdog: float | None = None,
        time_steps: bool = False,
        offload: Offloader | OffloadBackend | None = None,
        max_concurrency: int | None = None,
        max_pending: int | None = None,
        limits: Mapping[str, int] | None = None,
        overflow: Overflow = "reject",
        pending_at_shutdown: PendingAtShutdown = "run",
        shield_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            timeout=timeout,
            slow_threshold=slow_threshold,
            block_threshold=block_threshold,
            drain_timeout=drain_timeout,
            max_threads=max_threads,
            log_args=log_args,
            watchdog=watchdog,
            time_steps=time_steps,
            offload=offloader_for(offload),
            max_concurrency=max_concurrency,
            max_pending=max_pending,
            limits=limits,
            overflow=overflow,
            pending_at_shutdown=pending_at_shutdown,
            shield_timeout=shield_timeout,
        )
