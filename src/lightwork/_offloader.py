"""The ``Offloader``: checks jobs at the call site, hands them to a backend, keeps what fails.

``offload()`` validates and encodes at once (so errors point at the caller), then adds one
ordinary background task that calls the backend: the request never waits for the engine.
When the engine is unreachable or slow, the job goes to the outbox and rounds of delivery,
with backoff, run until it takes it.
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
import uuid
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from . import _offload_log as events
from ._backend import JobSnapshot, JobStatus, OffloadBackend, Submission
from ._exceptions import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    OffloadError,
    UnsupportedCapabilityError,
)
from ._handle import TaskState
from ._job import Job, JobRef
from ._logging import logger
from ._options import check_duration
from ._outbox import Outbox, PendingJob
from ._payload import DEFAULT_MAX_PAYLOAD_BYTES, check_options, encode_arguments
from ._registry import lookup

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ._backend import Capabilities, JSONValue
    from ._handle import TaskHandle
    from ._outbox import DeadLetter
    from ._source import TaskSource

T = TypeVar("T")

_Delivery = Literal["enqueued", "deferred", "failed"]
_TRANSIENT: Final = (BackendUnavailableError, BackendTimeoutError)
_JOB_OPTIONS: Final = frozenset({"job_id", "delay", "priority", "options"})
_MAX_JOB_ID_LENGTH: Final = 200


class _Default(enum.Enum):
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default.DEFAULT


class Offloader:
    """Hands jobs to an engine through a backend, and makes sure none is lost on the way.

    Give one to the scheduler (``Scheduler(offload=...)``); ``background.offload()`` then
    uses it. Without one, the scheduler makes a default: the local process pool.

    Args:
        backend: the engine's adapter (default: :class:`lightwork.backends.LocalBackend`).
        outbox: where jobs wait while the engine is unreachable: an :class:`Outbox`, a path
            for one, or ``None`` for none (such jobs are then logged as failed and lost).
            By default, an engine that runs elsewhere gets ``Outbox()``
            (``lightwork-outbox.sqlite3`` in the working directory); an in-process one none.
        max_payload_bytes: the largest JSON payload accepted at ``offload()`` (256 KiB).
        call_timeout: seconds every call to the engine may take before it counts as failed.

    Example:
        ```python
        offloader = Offloader(SaqBackend("redis://localhost:6379"), outbox="/var/lib/app/outbox.db")
        scheduler = Scheduler(offload=offloader)

        @asynccontextmanager
        async def lifespan(app):
            async with offloader:  # replays the outbox at start, closes the client at the end
                yield
        ```
    """

    def __init__(
        self,
        backend: OffloadBackend | None = None,
        *,
        outbox: Outbox | str | os.PathLike[str] | _Default | None = DEFAULT,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        call_timeout: float = 5.0,
    ) -> None:
        if backend is None:
            from .backends.local import LocalBackend  # noqa: PLC0415 -- the default, made on demand

            backend = LocalBackend()
        if not isinstance(backend, OffloadBackend):
            raise TypeError(f"backend must be an OffloadBackend, not {backend!r}")
        if (
            isinstance(max_payload_bytes, bool)
            or not isinstance(max_payload_bytes, int)
            or (max_payload_bytes < 1)
        ):
            raise ValueError(
                f"max_payload_bytes must be a positive integer, not {max_payload_bytes!r}"
            )
        check_duration("call_timeout", call_timeout, allow_none=False)
        if outbox is DEFAULT:
            outbox = Outbox() if backend.capabilities.remote else None
        elif isinstance(outbox, str | os.PathLike):
            outbox = Outbox(outbox)
        elif outbox is not None and not isinstance(outbox, Outbox):
            raise TypeError(f"outbox must be an Outbox, a path or None, not {outbox!r}")
        self.backend = backend
        self.outbox: Outbox | None = outbox
        self.max_payload_bytes = max_payload_bytes
        self.call_timeout = call_timeout
        self._destination = backend.destination
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._round_timer: asyncio.TimerHandle | None = None
        self._round_due = float("inf")
        self._round_task: asyncio.Task[None] | None = None
        self._round_again = False
        self._replay_pending = True
        self._outbox_has_jobs = False
        self._down_until = 0.0
        self._down_reason = ""
        self._counts = {"enqueued": 0, "deferred": 0, "failed": 0}

    def __repr__(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self._counts.items())
        return f"<Offloader {self.backend!r} outbox={self.outbox!r} {counts}>"

    @property
    def capabilities(self) -> Capabilities:
        """What the backend's engine can do."""
        return self.backend.capabilities

    def counts(self) -> dict[str, int]:
        """Return how many hand-offs were enqueued, deferred to the outbox, and failed."""
        return dict(self._counts)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and deliver what an earlier run left in the outbox.

        Done on first use if not called; call it at startup (``async with offloader``) so
        that the outbox is replayed before the first request.
        """
        self._ensure_started(reopen=True)

    async def aclose(self) -> None:
        """Stop the delivery rounds, then close the backend and the outbox.

        Jobs still waiting stay in the outbox for the next start. Call it after the
        scheduler has drained (the app's lifespan does both in that order).
        """
        if self._closed or self._loop is None:
            self._closed = True
            return
        self._closed = True
        if self._round_timer is not None:
            self._round_timer.cancel()
            self._round_timer = None
        if self._round_task is not None:
            self._round_task.cancel()
            await asyncio.gather(self._round_task, return_exceptions=True)
        try:  # not under call_timeout: a backend bounds its own close (a drain deadline)
            await self.backend.aclose()
        except Exception as exc:  # noqa: BLE001 -- closing goes on; the error is reported
            logger.error(events.BACKEND_CLOSE_FAILED, backend=self._destination, exc_info=exc)
        if self.outbox is not None:
            await self.outbox.aclose()

    async def __aenter__(self) -> Offloader:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _ensure_started(self, *, reopen: bool = False) -> None:
        """Bind to the running loop; a closed offloader reopens on a new loop or when asked."""
        loop, bound = asyncio.get_running_loop(), self._loop
        if bound is loop and not (self._closed and reopen):
            return
        if bound is not None and bound is not loop and not bound.is_closed() and not self._closed:
            raise RuntimeError(
                "this Offloader is bound to another running event loop; use one per loop"
            )
        self._loop, self._closed = loop, False
        self._round_timer, self._round_task, self._round_due = None, None, float("inf")
        if self.outbox is not None:
            self._replay_pending = True
            self._schedule_round(time.time())

    # -- offload() ----------------------------------------------------------------------------

    def _offload(
        self, source: TaskSource, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> JobRef[Any]:
        """Check and encode a job, then add the task that hands it over; see ``offload()``."""
        if isinstance(target, Job):
            if args:
                raise TypeError(
                    "offload() takes no positional arguments after a Job: put them in the Job"
                )
            if unknown := kwargs.keys() - _JOB_OPTIONS:
                raise TypeError(
                    f"offload() got unknown option(s) {', '.join(map(repr, sorted(unknown)))}; "
                    f"after a Job the keywords are lightwork's options "
                    f"({', '.join(sorted(_JOB_OPTIONS))}): put the job's own arguments in the Job"
                )
            job = self._prepare(target.target, target.args, target.kwargs, **kwargs)
        elif isinstance(target, str) or callable(target):
            job = self._prepare(target, args, kwargs)
        else:
            raise TypeError(
                f"offload() needs a job's name, its @offloadable function or a Job, "
                f"not {target!r} ({type(target).__name__})"
            )
        # No binding here: offload() may be called from a sync endpoint's thread; the
        # hand-off task binds the offloader to the scheduler's loop when it runs.
        delivery = source.add_task(
            self._deliver(job), name=f"offload {job.name}", timeout=None, slow_threshold=None
        )
        return JobRef(self, job.name, job.job_id, delivery)

    def job(self, job_id: str, name: str = "") -> JobRef[Any]:
        """Return a ref to a job offloaded earlier (in another request, or before a restart)."""
        return JobRef(self, name, job_id)

    def _prepare(
        self,
        target: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        job_id: str | None = None,
        delay: float | None = None,
        priority: int | None = None,
        options: Mapping[str, JSONValue] | None = None,
    ) -> PendingJob:
        registration = lookup(target)
        name = registration.name
        payload = encode_arguments(registration, args, kwargs, self.max_payload_bytes)
        capabilities = self.backend.capabilities
        if job_id is None:
            job_id = uuid.uuid4().hex
        elif not isinstance(job_id, str) or not 0 < len(job_id) <= _MAX_JOB_ID_LENGTH:
            raise TypeError(
                f"job_id must be a string of 1 to {_MAX_JOB_ID_LENGTH} characters, not {job_id!r}"
            )
        if delay is not None:
            check_duration("delay", delay)
            self._require(capabilities.delay, "run jobs after a delay")
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise TypeError(f"priority must be an integer, not {priority!r}")
            self._require(capabilities.priority, "order jobs by priority")
        if options:
            if unknown := options.keys() - capabilities.options:
                raise UnsupportedCapabilityError(
                    f"{type(self.backend).__name__} does not know the option(s) "
                    f"{', '.join(map(repr, sorted(unknown)))}; it accepts: "
                    f"{', '.join(map(repr, sorted(capabilities.options))) or 'none'}"
                )
            check_options(name, options)
        return PendingJob(
            name=name,
            job_id=job_id,
            payload=payload,
            run_at=None if delay is None else time.time() + delay,
            priority=priority,
            options=dict(options or {}),
        )

    def _require(self, capable: bool, what: str) -> None:
        if not capable:
            raise self.backend.unsupported(what)

    # -- handing over -------------------------------------------------------------------------

    async def _deliver(self, job: PendingJob) -> _Delivery:
        """The background task behind each ``offload()``: it never raises but to be cancelled."""
        try:
            self._ensure_started()
            assert self._loop is not None
            if self._closed:
                return self._keep_after_close(job)
            if self.outbox is not None and self._loop.time() < self._down_until:
                return await self._defer(job, self._down_reason)
            try:
                await self._submit(job)
            except _TRANSIENT as exc:
                self._mark_down(exc)
                if self.outbox is None:
                    self._log_failed(job, exc, attempts=1, hint="configure an Outbox to keep it")
                    return "failed"
                return await self._defer(job, str(exc))
            except OffloadError as exc:  # refused for good: retrying would not help
                self._log_failed(job, exc, attempts=1)
                if self.outbox is not None:
                    await self.outbox.give_up(self._destination, job, str(exc))
                return "failed"
            self._log_enqueued(job, attempts=1)
            if self._outbox_has_jobs:  # the engine is back: deliver what waits, now
                self._schedule_round(time.time())
            return "enqueued"
        except asyncio.CancelledError:
            if self.outbox is not None:  # cancelled at shutdown: keep the job for the next run
                self.outbox.put_blocking(self._destination, job, "cancelled at shutdown")
                self._log_deferred(job, "cancelled at shutdown", None)
            raise

    def _keep_after_close(self, job: PendingJob) -> _Delivery:
        reason = "offloaded after the offloader closed"
        if self.outbox is None:
            self._log_failed(job, reason, attempts=0)
            return "failed"
        self.outbox.put_blocking(self._destination, job, reason)
        self._log_deferred(job, reason, None)
        return "deferred"

    async def _defer(self, job: PendingJob, reason: str) -> _Delivery:
        assert self.outbox is not None
        try:
            retry_at = await self.outbox.put(self._destination, job, reason)
        except Exception as exc:  # noqa: BLE001 -- the outbox failed: the job's fate is logged
            self._log_failed(job, f"{reason}; and the outbox could not keep it: {exc!r}", 1)
            return "failed"
        self._outbox_has_jobs = True
        self._log_deferred(job, reason, retry_at)
        if not self._closed:
            self._schedule_round(retry_at)
        return "deferred"

    async def _submit(self, job: PendingJob) -> None:
        delay = None if job.run_at is None else max(job.run_at - time.time(), 0.0)
        submission = Submission.from_payload(
            job.name, job.job_id, job.payload,
            delay=delay, priority=job.priority, options=job.options,
        )  # fmt: skip
        await self._call(f"take job {job.name!r}", self.backend.submit(submission))

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """Await one backend call under ``call_timeout``, translating what escapes the adapter."""
        try:
            async with asyncio.timeout(self.call_timeout):
                return await call
        except OffloadError:
            raise
        except TimeoutError as exc:
            raise BackendTimeoutError(
                f"{self.backend!r} did not {what} within {self.call_timeout}s"
            ) from exc
        except Exception as exc:
            raise BackendError(f"{self.backend!r} failed to {what}: {exc!r}") from exc

    def _mark_down(self, exc: BaseException) -> None:
        # For a moment, new jobs go straight to the outbox instead of each waiting on a dead
        # engine; the next job after that probes it again.
        if self.outbox is not None and self._loop is not None:
            self._down_until = self._loop.time() + self.outbox.backoff
            self._down_reason = f"{exc} (the engine failed moments ago)"

    # -- delivery rounds ----------------------------------------------------------------------

    def _schedule_round(self, at: float) -> None:
        """Make sure a delivery round starts by *at* (epoch seconds)."""
        loop = self._loop
        if loop is None or self._closed:
            return
        if self._round_task is not None:
            self._round_again = True  # the running round reschedules when it ends
            return
        if at >= self._round_due:
            return
        if self._round_timer is not None:
            self._round_timer.cancel()
        self._round_due = at
        self._round_timer = loop.call_later(max(at - time.time(), 0.0), self._start_round)

    def _start_round(self) -> None:
        assert self._loop is not None
        self._round_timer, self._round_due = None, float("inf")
        self._round_task = self._loop.create_task(self._round(), name="lightwork outbox round")

    async def _round(self) -> None:
        outbox = self.outbox
        assert outbox is not None
        destination = self._destination
        next_due: float | None = None
        try:
            if self._replay_pending:
                self._replay_pending = False
                if waiting := await outbox.replay(destination):
                    self._outbox_has_jobs = True
                    logger.info(events.OUTBOX_REPLAYED, backend=destination, jobs=waiting)
            lease_s = 2 * self.call_timeout + 1.0
            while (job := await outbox.claim(destination, lease_s)) is not None:
                try:
                    await self._submit(job)
                except _TRANSIENT as exc:
                    self._mark_down(exc)
                    await self._postpone(str(exc), job)
                    break
                except OffloadError as exc:
                    self._log_failed(job, exc, attempts=job.attempts + 1)
                    await outbox.give_up(destination, job, str(exc))
                    continue
                await outbox.delivered(destination, job.job_id)
                self._log_enqueued(job, attempts=job.attempts + 1)
            next_due = await outbox.next_due(destination)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the outbox itself failed: report, retry later
            logger.error(events.OUTBOX_RETRY_FAILED, backend=destination, exc_info=exc)
            next_due = time.time() + outbox.retry_delay(1)
        finally:
            self._round_task = None
        self._outbox_has_jobs = next_due is not None
        if next_due is not None:
            self._schedule_round(next_due)
        if self._round_again:  # jobs were deferred during the round: look again
            self._round_again = False
            self._schedule_round(time.time())

    async def _postpone(self, reason: str, claimed: PendingJob) -> None:
        assert self.outbox is not None
        postponed, given_up = await self.outbox.postpone_due(
            self._destination, reason, claimed.job_id
        )
        if postponed:
            logger.warning(
                events.OUTBOX_RETRY_FAILED,
                backend=self._destination,
                jobs=len(postponed),
                attempts=max(job.attempts for job in postponed) + 1,
                reason=reason,
            )
        for job in given_up:
            self._log_failed(job, reason, attempts=job.attempts + 1)

    # -- the dead-letter table ----------------------------------------------------------------

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the jobs lightwork gave up handing over, oldest first (none without an outbox)."""
        if self.outbox is None:
            return []
        return await self.outbox.dead_letters(self._destination)

    async def retry_dead_letters(self, *job_ids: str) -> int:
        """Move dead letters (the given ones, or all) back to the outbox and deliver them now.

        Returns:
            How many jobs were moved.
        """
        if self.outbox is None:
            return 0
        moved = await self.outbox.requeue(self._destination, job_ids)
        if moved:
            logger.info(events.DEAD_LETTERS_REQUEUED, backend=self._destination, jobs=moved)
            self._ensure_started()
            self._outbox_has_jobs = True
            self._schedule_round(time.time())
        return moved

    # -- what JobRef asks ---------------------------------------------------------------------

    async def _snapshot(self, job_id: str, delivery: TaskHandle[Any] | None) -> JobSnapshot:
        handed: _Delivery | None = None
        if delivery is not None:
            if not delivery.done():
                return JobSnapshot(JobStatus.SUBMITTING)
            if delivery.state is TaskState.DROPPED:
                return JobSnapshot(JobStatus.DROPPED, error=str(delivery.exception()))
            if delivery.state is TaskState.COMPLETED:
                handed = delivery.result()
        if handed != "enqueued" and self.outbox is not None:
            place = await self.outbox.where(self._destination, job_id)
            if place == "outbox":
                return JobSnapshot(JobStatus.DEFERRED)
            if place == "dead":
                return JobSnapshot(JobStatus.UNDELIVERED)
        if handed == "failed":
            return JobSnapshot(JobStatus.UNDELIVERED)
        if delivery is not None and delivery.state is TaskState.CANCELLED:
            return JobSnapshot(JobStatus.CANCELLED)
        if not self.backend.capabilities.status:
            raise self.backend.unsupported("tell a job's status")
        return await self._call("tell a job's status", self.backend.inspect(job_id))

    async def _cancel(self, job_id: str, delivery: TaskHandle[Any] | None) -> bool:
        if delivery is not None and delivery.state is TaskState.PENDING:
            return delivery.cancel()
        if delivery is not None and not delivery.done():
            await asyncio.wait_for(delivery._ended(), self.call_timeout + 1.0)
        if self.outbox is not None and await self.outbox.discard(self._destination, job_id):
            return True
        if delivery is not None and delivery.state is not TaskState.COMPLETED:
            return False
        if not self.backend.capabilities.cancel:
            raise self.backend.unsupported("cancel jobs")
        return await self._call("cancel a job", self.backend.cancel(job_id))

    # -- logging ------------------------------------------------------------------------------

    def _log_enqueued(self, job: PendingJob, attempts: int) -> None:
        self._counts["enqueued"] += 1
        logger.info(
            events.OFFLOAD_ENQUEUED,
            job=job.name, job_id=job.job_id, backend=self._destination, attempts=attempts,
        )  # fmt: skip

    def _log_deferred(self, job: PendingJob, reason: str, retry_at: float | None) -> None:
        self._counts["deferred"] += 1
        fields: dict[str, Any] = {"job": job.name, "job_id": job.job_id, "reason": reason}
        if retry_at is not None:
            fields["retry_in_s"] = round(max(retry_at - time.time(), 0.0), 3)
        logger.warning(events.OFFLOAD_DEFERRED, backend=self._destination, **fields)

    def _log_failed(
        self, job: PendingJob, exc: BaseException | str, attempts: int, hint: str | None = None
    ) -> None:
        self._counts["failed"] += 1
        fields: dict[str, Any] = {"reason": str(exc), "attempts": attempts}
        if self.outbox is not None:
            fields["dead_letter"] = True
        if hint is not None:
            fields["hint"] = hint
        logger.error(
            events.OFFLOAD_FAILED,
            job=job.name, job_id=job.job_id, backend=self._destination, **fields,
        )  # fmt: skip


def offloader_for(value: Offloader | OffloadBackend | None) -> Offloader:
    """Return the scheduler's offloader for its ``offload=`` argument (default: local pool)."""
    if value is None:
        return Offloader()
    if isinstance(value, Offloader):
        return value
    if isinstance(value, OffloadBackend):
        return Offloader(value)
    raise TypeError(
        f"offload must be a lightwork.Offloader or an offload backend (such as "
        f"lightwork.backends.LocalBackend()), not {value!r}"
    )
