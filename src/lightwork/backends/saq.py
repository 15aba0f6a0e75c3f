"""SAQ: an asyncio-native job queue on Redis, with JSON for jobs and results.

Install with ``pip install 'lightwork[saq]'``. The web process enqueues by name (it never
needs SAQ's worker code); the worker runs the same ``@offloadable`` functions, registered
under the same names by :func:`worker_settings`:

```python
# myapp/worker.py
from lightwork.backends.saq import worker_settings

import myapp.jobs  # noqa: F401 -- registers the @offloadable jobs

settings = worker_settings("redis://localhost:6379", queue="default")
```

Start it with ``saq myapp.worker.settings`` (add ``--workers 4`` for four processes).

A job id is SAQ's job key: while SAQ remembers the job (until its ``ttl`` after it ends,
600 s by default) the same id is not enqueued again, so a job delivered twice (say, from
the outbox after a lost reply) runs once.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .._core._exceptions import MissingDependencyError
from .._core._options import check_duration
from .._offload._backend import Capabilities, JobSnapshot, JobStatus, OffloadBackend, Submission
from .._offload._exceptions import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
)
from .._offload._registry import Registration, lookup, registrations

try:
    import redis.asyncio
    import redis.exceptions
    import saq
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from saq.job import Status
    from saq.queue.redis import RedisQueue

    _REDIS_ERRORS: Final = (redis.exceptions.RedisError, OSError)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("lightwork.backends.saq", "saq") from exc

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable, Mapping

    from .._offload._payload import JSONValue

__all__ = ["SaqBackend", "worker_settings"]

JOB_OPTIONS: Final = frozenset(
    {"timeout", "heartbeat", "retries", "ttl", "retry_delay", "retry_backoff", "meta"}
)
"""SAQ's own per-job settings that ``offload(..., options=)`` passes through."""

_STATUSES: Final = {
    Status.NEW: JobStatus.QUEUED,
    Status.QUEUED: JobStatus.QUEUED,
    Status.ACTIVE: JobStatus.RUNNING,
    Status.ABORTING: JobStatus.RUNNING,
    Status.ABORTED: JobStatus.CANCELLED,  # when lightwork aborted it: see inspect()
    Status.FAILED: JobStatus.FAILED,
    Status.COMPLETE: JobStatus.COMPLETED,
}
_CANCELLED: Final = "cancelled through lightwork"
"""The error lightwork's aborts carry, which tells them from SAQ's own (a dead worker's job)."""


class SaqBackend(OffloadBackend):
    """Send jobs to SAQ, on Redis.

    Args:
        url: the Redis URL SAQ uses (``redis://host:port/db``).
        queue: the SAQ queue's name; its worker must serve the same one.
        job_options: SAQ job settings for every job (``timeout``, ``retries``, ``ttl``,
            ``retry_delay``, ``retry_backoff``, ``heartbeat``, ``meta``); a job's own
            ``options=`` win. Mind SAQ's default job ``timeout`` of 10 s.
        socket_timeout: seconds a Redis read or write may take.
        connect_timeout: seconds connecting to Redis may take.

    Example:
        ```python
        backend = SaqBackend("redis://localhost:6379", job_options={"timeout": 300})
        scheduler = Scheduler(offload=Offloader(backend, outbox="/var/lib/app/outbox.db"))
        ```
    """

    capabilities = Capabilities(
        dedup=True, delay=True, status=True, result=True, cancel=True, remote=True,
        options=JOB_OPTIONS,
    )  # fmt: skip

    def __init__(
        self,
        url: str = "redis://localhost:6379",
        *,
        queue: str = "default",
        job_options: Mapping[str, JSONValue] | None = None,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        check_duration("socket_timeout", socket_timeout, allow_none=False)
        check_duration("connect_timeout", connect_timeout, allow_none=False)
        if unknown := (job_options or {}).keys() - JOB_OPTIONS:
            raise ValueError(
                f"unknown SAQ job option(s) {', '.join(map(repr, sorted(unknown)))}; "
                f"known: {', '.join(sorted(JOB_OPTIONS))}"
            )
        self.check_options(job_options or {})
        self.url = url
        self.queue_name = queue
        self.job_options = dict(job_options or {})
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._queue: RedisQueue | None = None

    @property
    def destination(self) -> str:
        """``saq:`` host, port, database and queue name (never the password)."""
        parts = urlsplit(self.url)
        return f"saq:{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}:{self.queue_name}"

    def _connected(self) -> RedisQueue:
        if self._queue is None:
            client = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.connect_timeout,
                # One quick retry, for a pooled connection that died with a restarted
                # Redis; longer waits are the outbox's job, not the client's.
                retry=Retry(NoBackoff(), retries=1),
            )
            self._queue = RedisQueue(client, name=self.queue_name)
        return self._queue

    async def submit(self, submission: Submission) -> None:
        """Enqueue the job under its id, unless SAQ already has a job with that id."""
        options: dict[str, Any] = {**self.job_options, **submission.options}
        if submission.delay:
            options["scheduled"] = math.ceil(time.time() + submission.delay)
        job = saq.Job(
            function=submission.name,
            kwargs={"args": submission.args, "kwargs": submission.kwargs},
            key=submission.job_id,
            **options,
        )
        try:
            queue = self._connected()
            # SAQ refuses a key only while the job is unfinished; we also refuse it while
            # SAQ keeps the finished job, so that a repeated delivery never runs it twice.
            # A first delivery of an id lightwork made cannot be a repeat: no read needed.
            if submission.first_delivery or await queue.job(submission.job_id) is None:
                await queue.enqueue(job)
        except _REDIS_ERRORS as exc:
            raise self._translated(exc, "enqueue a job") from exc

    def check_options(self, options: Mapping[str, JSONValue]) -> None:
        """Refuse SAQ job option values that SAQ would misread or fail on."""
        for option, value in options.items():
            if option in _OPTION_RULES:
                valid, what = _OPTION_RULES[option]
                if not valid(value):
                    raise ValueError(f"SAQ's {option!r} option must be {what}, not {value!r}")

    async def inspect(self, job_id: str) -> JobSnapshot:
        """Return SAQ's status of the job, with its result or error once it has ended."""
        try:
            job = await self._connected().job(job_id)
        except _REDIS_ERRORS as exc:
            raise self._translated(exc, "read a job") from exc
        if job is None:
            return JobSnapshot(JobStatus.UNKNOWN)
        status = _STATUSES[job.status]
        if job.status is Status.ABORTED and job.error != _CANCELLED:
            # SAQ's sweeper aborts a job whose worker died ("swept"): a failure, not a cancel.
            status = JobStatus.FAILED
        return JobSnapshot(status, job.result, job.error)

    async def cancel(self, job_id: str) -> bool:
        """Abort the job: a queued one never starts, a running one is cancelled."""
        try:
            queue = self._connected()
            job = await queue.job(job_id)
            if job is None or _STATUSES[job.status].done:
                return False
            waiting = job.status in (Status.NEW, Status.QUEUED)
            await queue.abort(job, error=_CANCELLED)
            if waiting and (job := await queue.job(job_id)) and job.status is Status.ABORTING:
                # SAQ finishes an aborted job itself only when it was in the ready list;
                # a delayed one would stay "aborting" for ever.
                await queue.finish(job, Status.ABORTED, error=_CANCELLED)
        except _REDIS_ERRORS as exc:
            raise self._translated(exc, "abort a job") from exc
        return True

    async def aclose(self) -> None:
        """Close the Redis connections, within a socket timeout; the next call opens new ones."""
        queue, self._queue = self._queue, None
        if queue is None:
            return
        try:
            # SAQ unsubscribes from Redis first: a hung Redis would hold that for two socket
            # timeouts (a retry), and an error would skip closing the connections.
            async with asyncio.timeout(self.socket_timeout):
                await queue.disconnect()
        except TimeoutError as exc:
            raise BackendTimeoutError(
                f"Redis did not answer within {self.socket_timeout}s (disconnect); its "
                "connections are closed all the same"
            ) from exc
        except _REDIS_ERRORS as exc:
            raise self._translated(exc, "disconnect") from exc
        finally:
            await queue.redis.aclose(close_connection_pool=True)

    def _translated(self, exc: Exception, what: str) -> BackendError:
        # A function, not a context manager: it is on every job's path.
        if isinstance(exc, redis.exceptions.TimeoutError):
            return BackendTimeoutError(f"Redis did not answer in time ({what}): {exc}")
        if isinstance(exc, redis.exceptions.ConnectionError | OSError):
            return BackendUnavailableError(
                f"Redis at {self.destination} is unreachable ({what}): {exc}"
            )
        return BackendError(f"Redis refused to {what}: {exc}")


def worker_settings(
    url: str = "redis://localhost:6379",
    *,
    queue: str = "default",
    names: Iterable[str] | None = None,
    concurrency: int = 10,
    **settings: Any,
) -> dict[str, Any]:
    """Return settings for SAQ's worker that run the ``@offloadable`` jobs under their names.

    Import the modules that define the jobs first, so that they are registered. Sync jobs
    run in the worker's threads, async ones on its event loop; start several worker
    processes (``saq ... --workers N``) for CPU-bound jobs.

    Args:
        url: the Redis URL, as given to :class:`SaqBackend`.
        queue: the queue to serve.
        names: the jobs to serve (default: every registered job).
        concurrency: how many jobs one worker process runs at once.
        **settings: any other SAQ worker setting (``startup``, ``timers``...).

    Example:
        ```python
        settings = worker_settings("redis://localhost:6379")  # then: saq myapp.worker.settings
        ```
    """
    chosen = registrations() if names is None else {name: lookup(name) for name in names}
    return {
        "queue": saq.Queue.from_url(url, name=queue),
        "functions": [(name, _saq_function(job)) for name, job in chosen.items()],
        "concurrency": concurrency,
        **settings,
    }


def _saq_function(
    registration: Registration,
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def run(ctx: Any, *, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return await registration.arun(args, kwargs, ctx["job"].key)

    run.__qualname__ = run.__name__ = registration.name
    return run


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


_OPTION_RULES: Final[dict[str, tuple[Callable[[object], bool], str]]] = {
    "timeout": (_seconds, "seconds, 0 or more (0: no timeout)"),
    "heartbeat": (_seconds, "seconds, 0 or more (0: no heartbeat)"),
    "retries": (_count, "a whole number, 0 or more"),
    "ttl": (
        lambda value: isinstance(value, int) and not isinstance(value, bool),
        "a whole number of seconds (for SAQ, -1 keeps the job and 0 forgets it at once)",
    ),
    "retry_delay": (_seconds, "seconds, 0 or more"),
    "retry_backoff": (
        lambda value: isinstance(value, bool) or _seconds(value),
        "True, False, or the longest delay in seconds",
    ),
    "meta": (lambda value: isinstance(value, dict), "a dict"),
}
