"""The courier: hands each job to the backend, and keeps in the outbox what the engine won't take.

One ``deliver()`` runs as the background task behind each ``offload()``. When the engine is
unreachable or too slow, the job goes to the outbox, and rounds of delivery, with backoff
and jitter, run until the engine takes it; a round also replays, at start, what an earlier
run left behind. Each job's fate is logged once it is settled.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from .._core._decorator import task
from .._core._logging import debug_enabled, logger
from . import _log as events
from ._backend import Submission
from ._exceptions import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    OffloadError,
)
from ._payload import decode_arguments
from ._timeouts import CallTimeouts

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine

    from .._core._handle import TaskHandle
    from ._backend import OffloadBackend
    from ._outbox import Outbox, PendingJob

T = TypeVar("T")

Delivery = Literal["enqueued", "deferred", "failed"]
"""How a hand-off ended: the result of the ``deliver()`` task."""
_TRANSIENT: Final = (BackendUnavailableError, BackendTimeoutError)


def is_hand_off(coro: object) -> bool:
    """Tell whether *coro* is a hand-off: a ``Courier.deliver()`` coroutine."""
    return getattr(coro, "cr_code", None) is _DELIVER_CODE


class Courier:
    """Delivers an offloader's jobs to its backend, through the outbox when it must."""

    def __init__(self, backend: OffloadBackend, outbox: Outbox | None, call_timeout: float) -> None:
        self.backend = backend
        self.outbox = outbox
        self.call_timeout = call_timeout
        self.destination = backend.destination
        self.closed = False
        self.outbox_has_jobs = False
        self.counts = {"enqueued": 0, "deferred": 0, "failed": 0}
        self.handing_over: dict[str, TaskHandle[Any]] = {}
        """Job id -> its hand-off while it runs, so that a ``JobRef`` says "submitting"."""
        self.unstarted: dict[int, PendingJob] = {}
        """Hand-off task id -> its job, until the task's first step: see ``forget_unstarted``."""
        self._debug = False  # whether to log offload_enqueued: asked when binding
        self._loop: asyncio.AbstractEventLoop | None = None
        self._round_timer: asyncio.TimerHandle | None = None
        self._timeouts: CallTimeouts | None = None  # made on the first call on a loop
        self._round_due = float("inf")
        self._round_task: asyncio.Task[None] | None = None
        self._round_again = False
        self._replay_pending = True
        self._down_until = 0.0
        self._bound_at = 0.0  # when this run began: older jobs in the outbox are replayed
        self._down_reason = ""

    def bind(self, *, reopen: bool = False) -> None:
        """Bind to the running loop; a closed courier reopens on a new loop or when asked.

        Binding schedules a first round, which replays what the outbox holds. It is also
        when the courier asks whether debug events are logged, as a scheduler does at start.
        """
        loop, bound = asyncio.get_running_loop(), self._loop
        if bound is loop and not (self.closed and reopen):
            return
        if bound is not None and bound is not loop and not bound.is_closed() and not self.closed:
            raise RuntimeError(
                "this Offloader is bound to another running event loop; use one per loop"
            )
        self._loop, self.closed, self._bound_at = loop, False, time.time()
        self._debug = debug_enabled()
        self._round_timer, self._round_task, self._round_due = None, None, float("inf")
        if self.outbox is not None:
            self._replay_pending = True
            self.schedule_round(time.time())

    async def stop(self) -> bool:
        """Stop the rounds; return ``False`` if the courier never started or had stopped."""
        if self.closed or self._loop is None:
            self.closed = True
            return False
        self.closed = True
        if self._round_timer is not None:
            self._round_timer.cancel()
            self._round_timer = None
        if self._round_task is not None:
            self._round_task.cancel()
            await asyncio.gather(self._round_task, return_exceptions=True)
        return True

    # -- handing over -------------------------------------------------------------------------

    # No timeout: each call in it has the call timeout. No slow warning: waiting on a slow
    # engine is no misuse of the loop. Defined once here, not checked at every offload().
    @task(timeout=None, slow_threshold=None)
    async def deliver(self, job: PendingJob) -> Delivery:
        """The background task behind each ``offload()``: it never raises but to be cancelled."""
        if job.hand_off is not None:  # its first step: forget_unstarted() is not for it now
            del self.unstarted[job.hand_off.id]
            job.hand_off = None
        try:
            if self._loop is not asyncio.get_running_loop():  # bound at the first hand-off
                self.bind()
            assert self._loop is not None
            if self.closed:
                return self._keep_after_close(job)
            if self.outbox is not None and self._loop.time() < self._down_until:
                return await self._defer(job, self._down_reason)
            try:
                await self._submit(job, first_delivery=job.fresh_id)
            except _TRANSIENT as exc:
                self._mark_down(exc)
                if self.outbox is None:
                    self._log_failed(job, exc, attempts=1, hint="configure an Outbox to keep it")
                    return "failed"
                return await self._defer(job, str(exc))
            except OffloadError as exc:  # refused for good: retrying would not help
                await self._give_up(job, exc)
                return "failed"
            self.counts["enqueued"] += 1
            if self._debug:
                self._log_enqueued(job, attempts=1)
            if self.outbox_has_jobs:  # the engine is back: deliver what waits, now
                self.schedule_round(time.time())
            return "enqueued"
        except asyncio.CancelledError:
            self.keep_cancelled(job)
            raise
        finally:
            self.handing_over.pop(job.job_id, None)

    def forget_unstarted(self, error: BaseException) -> None:
        """The ``on_error`` of every hand-off: forget one that never ran, keep its job at shutdown.

        A hand-off that ran forgets itself as it ends. One bound method for all hand-offs,
        which finds the job by the task id the error carries: a closure per ``offload()``,
        held by its task to the end, kept objects in the garbage collector's youngest
        generation and made it collect a third more often while jobs were in flight.
        """
        job = self.unstarted.pop(getattr(error, "task_id", -1), None)
        if job is None or job.hand_off is None:  # the hand-off ran, or never was pending
            return
        delivery, job.hand_off = job.hand_off, None
        never_ran = self.handing_over.pop(job.job_id, None) is not None
        if never_ran and delivery._cancel_reason == "shutdown":  # before its first step
            self.keep_cancelled(job)

    def keep_cancelled(self, job: PendingJob) -> None:
        """Keep a hand-off cancelled at shutdown in the outbox, if any, for the next run."""
        if self.outbox is not None:
            self.outbox.put_blocking(self.destination, job, "cancelled at shutdown")
            self._log_deferred(job, "cancelled at shutdown", None)

    def _keep_after_close(self, job: PendingJob) -> Delivery:
        reason = "offloaded after the offloader closed"
        if self.outbox is None:
            self._log_failed(job, reason, attempts=0)
            return "failed"
        self.outbox.put_blocking(self.destination, job, reason)
        self._log_deferred(job, reason, None)
        return "deferred"

    async def _give_up(self, job: PendingJob, error: OffloadError) -> None:
        """Move a job the engine refused to the dead-letter table, if any, and log its end."""
        if self.outbox is None:
            self._log_failed(job, error, attempts=1)
            return
        try:
            await self.outbox.give_up(self.destination, job, str(error))
        except Exception as exc:  # noqa: BLE001 -- the outbox failed: the job's fate is logged
            self._log_unkept(job, error, exc)
        else:
            self._log_failed(job, error, attempts=1)

    async def _defer(self, job: PendingJob, reason: str) -> Delivery:
        assert self.outbox is not None
        try:
            retry_at = await self.outbox.put(self.destination, job, reason)
        except Exception as exc:  # noqa: BLE001 -- the outbox failed: the job's fate is logged
            self._log_unkept(job, reason, exc)
            return "failed"
        self.outbox_has_jobs = True
        self._log_deferred(job, reason, retry_at)
        if not self.closed:
            self.schedule_round(retry_at)
        return "deferred"

    def _submit(
        self, job: PendingJob, *, first_delivery: bool = False
    ) -> Coroutine[Any, Any, None]:
        # Not a coroutine itself: what it returns is awaited directly, one frame fewer to
        # resume at every step of every hand-off.
        delay = None if job.run_at is None else max(job.run_at - time.time(), 0.0)
        args, kwargs = job.arguments or decode_arguments(job.payload)
        # Made here, by position, rather than by ``Submission.from_payload()``: a third of
        # the cost. The job's options are its own copy, which a backend only reads.
        submission = Submission(
            job.name, job.job_id, job.payload, args, kwargs, delay, job.priority, job.options,
            first_delivery,
        )  # fmt: skip
        return self.call(_taking(job.name), self.backend.submit(submission))

    async def call(self, what: str, call: Awaitable[T]) -> T:
        """Await one backend call under ``call_timeout``, translating what escapes the adapter."""
        # Timed out as ``asyncio.timeout()`` does, by cancelling the task, and ``uncancel()``
        # tells our cancellation from another; but on a timer shared by all calls.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        timeouts = self._timeouts
        if timeouts is None or timeouts.loop is not loop:
            timeouts = self._timeouts = CallTimeouts(loop, self.call_timeout)
        cancelling, calls = task.cancelling(), timeouts.watch(task)
        try:
            return await call
        except asyncio.CancelledError as exc:
            if calls.pop(task, False) and task.uncancel() <= cancelling:  # ours alone
                raise self._timed_out(what) from exc
            raise
        except OffloadError:
            raise
        except TimeoutError as exc:
            raise self._timed_out(what) from exc
        except Exception as exc:
            raise BackendError(f"{self.backend!r} failed to {what}: {exc!r}") from exc
        finally:
            if calls.pop(task, False):  # the call swallowed our cancellation: withdraw it
                task.uncancel()

    def _timed_out(self, what: str) -> BackendTimeoutError:
        return BackendTimeoutError(f"{self.backend!r} did not {what} within {self.call_timeout}s")

    def _mark_down(self, exc: BaseException) -> None:
        # For a moment, new jobs go straight to the outbox instead of each waiting on a dead
        # engine; the next job after that probes it again.
        if self.outbox is not None and self._loop is not None:
            self._down_until = self._loop.time() + self.outbox.backoff
            self._down_reason = f"{exc} (the engine failed moments ago)"

    # -- delivery rounds ----------------------------------------------------------------------

    def schedule_round(self, at: float) -> None:
        """Make sure a delivery round starts by *at* (epoch seconds)."""
        loop = self._loop
        if loop is None or self.closed:
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
        destination = self.destination
        next_due: float | None = None
        try:
            if self._replay_pending:
                self._replay_pending = False
                if waiting := await outbox.replay(destination, self._bound_at):
                    self.outbox_has_jobs = True
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
                    await outbox.give_up(destination, job, str(exc))  # if this fails, retried
                    self._log_failed(job, exc, attempts=job.attempts + 1)
                    continue
                await outbox.delivered(destination, job.job_id)
                self.counts["enqueued"] += 1
                if self._debug:
                    self._log_enqueued(job, attempts=job.attempts + 1)
            next_due = await outbox.next_due(destination)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the outbox itself failed: report, retry later
            logger.error(events.OUTBOX_RETRY_FAILED, backend=destination, exc_info=exc)
            next_due = time.time() + outbox.retry_delay(1)
        finally:
            self._round_task = None
        self.outbox_has_jobs = next_due is not None
        if next_due is not None:
            self.schedule_round(next_due)
        if self._round_again:  # jobs were deferred during the round: look again
            self._round_again = False
            self.schedule_round(time.time())

    async def _postpone(self, reason: str, claimed: PendingJob) -> None:
        assert self.outbox is not None
        postponed, given_up = await self.outbox.postpone_due(
            self.destination, reason, claimed.job_id
        )
        if postponed:
            logger.warning(
                events.OUTBOX_RETRY_FAILED,
                backend=self.destination,
                jobs=len(postponed),
                attempts=max(job.attempts for job in postponed) + 1,
                reason=reason,
            )
        for job in given_up:
            self._log_failed(job, reason, attempts=job.attempts + 1)

    # -- logging ------------------------------------------------------------------------------

    def _log_enqueued(self, job: PendingJob, attempts: int) -> None:
        # Debug, like a task's completion: a hand-off that worked is routine, and logging
        # every one at info would cost as much as the hand-off itself. Its callers count it
        # and call this only when debug events are logged: a call fewer per job.
        logger.debug(
            events.OFFLOAD_ENQUEUED,
            job=job.name, job_id=job.job_id, backend=self.destination, attempts=attempts,
        )  # fmt: skip

    def _log_deferred(self, job: PendingJob, reason: str, retry_at: float | None) -> None:
        self.counts["deferred"] += 1
        fields: dict[str, Any] = {"job": job.name, "job_id": job.job_id, "reason": reason}
        if retry_at is not None:
            fields["retry_in_s"] = round(max(retry_at - time.time(), 0.0), 3)
        logger.warning(events.OFFLOAD_DEFERRED, backend=self.destination, **fields)

    def _log_unkept(self, job: PendingJob, reason: object, exc: Exception) -> None:
        """Log a job lost on its first attempt because the outbox failed to keep it."""
        lost = f"{reason}; and the outbox could not keep it: {exc!r}"
        self._log_failed(job, lost, attempts=1, kept=False)

    def _log_failed(
        self,
        job: PendingJob,
        exc: BaseException | str,
        attempts: int,
        hint: str | None = None,
        *,
        kept: bool = True,
    ) -> None:
        """Log a job lightwork gave up on; *kept* says whether the dead-letter table has it."""
        self.counts["failed"] += 1
        fields: dict[str, Any] = {"reason": str(exc), "attempts": attempts}
        if self.outbox is not None:
            fields["dead_letter"] = kept
        if hint is not None:
            fields["hint"] = hint
        logger.error(
            events.OFFLOAD_FAILED,
            job=job.name, job_id=job.job_id, backend=self.destination, **fields,
        )  # fmt: skip


_DELIVER_CODE: Final = Courier.deliver.__code__


@functools.lru_cache(maxsize=256)
def _taking(name: str) -> str:
    """Say what submitting a job of *name* does, for its errors: made once per job name."""
    return f"take job {name!r}"
