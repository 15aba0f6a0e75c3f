"""The ``Offloader``: the bridge's public face, and the checks made at the ``offload()`` call.

``offload()`` validates and encodes at once (so errors point at the caller), then adds one
ordinary background task, the courier's ``deliver()``, that hands the job to the backend:
the request never waits for the engine. The offloader also answers what a ``JobRef`` asks.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import os
import time
from typing import TYPE_CHECKING, Any, Final

from .._core._handle import TaskState
from .._core._logging import logger
from .._core._options import check_duration
from . import _log as events
from ._backend import JobSnapshot, JobStatus, OffloadBackend
from ._courier import Courier, is_hand_off
from ._exceptions import UnsupportedCapabilityError
from ._job import Job, JobRef, TaskOffloadedError
from ._outbox import Outbox, PendingJob
from ._payload import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    check_options,
    encode_arguments,
)
from ._registry import is_offloadable, lookup

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._core._handle import TaskHandle
    from .._core._source import TaskSource
    from ._backend import Capabilities
    from ._courier import Delivery
    from ._outbox import DeadLetter
    from ._payload import JSONValue

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
            from ..backends.local import LocalBackend  # noqa: PLC0415 -- the default, made on demand

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
        self._courier = Courier(backend, outbox, call_timeout)
        self._forget_unstarted = self._courier.forget_unstarted  # one for every hand-off

    def __repr__(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self._courier.counts.items())
        return f"<Offloader {self.backend!r} outbox={self.outbox!r} {counts}>"

    @property
    def capabilities(self) -> Capabilities:
        """What the backend's engine can do."""
        return self.backend.capabilities

    def counts(self) -> dict[str, int]:
        """Return how many hand-offs were enqueued, deferred to the outbox, and failed."""
        return dict(self._courier.counts)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and deliver what an earlier run left in the outbox.

        Done on first use if not called; call it at startup (``async with offloader``) so
        that the outbox is replayed before the first request.
        """
        self._courier.bind(reopen=True)

    async def aclose(self) -> None:
        """Stop the delivery rounds, then close the backend and the outbox.

        Jobs still waiting stay in the outbox for the next start. Call it after the
        scheduler has drained (the app's lifespan does both in that order). Closing again
        closes the outbox again: a look into it since (``where``, ``count``) reopened it.
        """
        if await self._courier.stop():
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
        job_id, courier = job.job_id, self._courier
        delivery = source.add_task(
            courier.deliver(job), name=_hand_off_name(job.name), on_error=self._forget_unstarted
        )
        if not delivery.done():  # so that job(job_id) says "submitting", not "unknown"
            courier.handing_over[job_id] = delivery
            if not delivery._started_at:  # no eager task factory ran its first step
                job.hand_off, courier.unstarted[delivery.id] = delivery, job
        return JobRef(self, job.name, job_id, delivery)

    def job(self, job_id: str, name: str = "") -> JobRef[Any]:
        """Return a ref to a job offloaded earlier (in another request, or before a restart)."""
        return JobRef(self, name, job_id, self._courier.handing_over.get(job_id))

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
        payload, arguments = encode_arguments(registration, args, kwargs, self.max_payload_bytes)
        capabilities = self.backend.capabilities
        fresh_id = job_id is None
        if job_id is None:
            job_id = os.urandom(16).hex()  # as random as uuid4(), without its object
        elif (
            not isinstance(job_id, str)
            or not 0 < len(job_id) <= _MAX_JOB_ID_LENGTH
            or not (job_id.isascii() or _is_utf8(job_id))
        ):
            raise TypeError(
                f"job_id must be a string of 1 to {_MAX_JOB_ID_LENGTH} characters of valid "
                f"Unicode text, not {job_id!r}"
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
            self.backend.check_options(options)
        now = time.time()
        # By position, at half the cost of keywords: name, job_id, payload, run_at, priority,
        # options, created_at, attempts, fresh_id, arguments.
        return PendingJob(
            name, job_id, payload, None if delay is None else now + delay, priority,
            dict(options or {}), now, 0, fresh_id, arguments,
        )  # fmt: skip

    def _require(self, capable: bool, what: str) -> None:
        if not capable:
            raise self.backend.unsupported(what)

    # -- handing over: the scheduler's offload port (overflow="offload", spill) -------------

    def accepts(self, fn: object) -> bool:
        """Tell whether a task calling *fn* could be handed over: an ``@offloadable`` one's."""
        return is_offloadable(fn)

    def is_hand_off(self, coro: object) -> bool:
        """Tell whether *coro* is one of this bridge's hand-offs, which never wait for a slot."""
        return is_hand_off(coro)

    def take_over(
        self, source: TaskSource, handle: TaskHandle[Any], reason: str
    ) -> TaskOffloadedError:
        """Offload the call kept on an unstarted *handle*; return what awaiting it raises."""
        assert handle._job is not None
        fn, args, kwargs = handle._job
        ref = self._offload(source, fn, args, kwargs)
        return TaskOffloadedError(
            f"task {handle.name!r} went to the offload bridge as job {ref.job_id}: {reason}",
            task=handle.name,
            task_id=handle.id,
            job=ref,
        )

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
            self._courier.bind()
            self._courier.outbox_has_jobs = True
            self._courier.schedule_round(time.time())
        return moved

    # -- what JobRef asks ---------------------------------------------------------------------

    async def _snapshot(self, job_id: str, delivery: TaskHandle[Any] | None) -> JobSnapshot:
        handed: Delivery | None = None
        if delivery is not None:
            if not delivery.done():
                return JobSnapshot(JobStatus.SUBMITTING)
            if delivery.state is TaskState.DROPPED:
                return JobSnapshot(JobStatus.DROPPED, error=str(delivery.exception()))
            if delivery.state is TaskState.COMPLETED:
                handed = delivery.result()
        lost = "handing it to the engine failed: see the offload_failed log event"
        if handed != "enqueued" and self.outbox is not None:
            place = await self.outbox.where(self._destination, job_id)
            if place == "outbox":
                return JobSnapshot(JobStatus.DEFERRED)
            if place == "dead":
                error = await self.outbox.dead_letter_error(self._destination, job_id)
                return JobSnapshot(JobStatus.UNDELIVERED, error=error or lost)
        if handed == "failed" and self.outbox is None:  # no dead letter to revive: lost
            return JobSnapshot(JobStatus.UNDELIVERED, error=lost)
        if delivery is not None and delivery.state is TaskState.CANCELLED:
            return JobSnapshot(JobStatus.CANCELLED)
        if not self.backend.capabilities.status:
            raise self.backend.unsupported("tell a job's status")
        snapshot = await self._courier.call("tell a job's status", self.backend.inspect(job_id))
        # A failed hand-off whose dead letter has left the table was retried, and the engine
        # knows the job; unless the outbox could not even keep it.
        if handed == "failed" and snapshot.status is JobStatus.UNKNOWN:
            return JobSnapshot(JobStatus.UNDELIVERED, error=lost)
        return snapshot

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
        return await self._courier.call("cancel a job", self.backend.cancel(job_id))


@functools.lru_cache(maxsize=256)
def _hand_off_name(name: str) -> str:
    """Return the name of the hand-off task of a job of *name*: made once per job name."""
    return f"offload {name}"


def _is_utf8(text: str) -> bool:
    """Tell whether UTF-8 can encode *text*: no lone surrogate (``os.listdir()`` makes them)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


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
