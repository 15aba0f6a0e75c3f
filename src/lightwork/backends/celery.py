"""Celery: the distributed task queue many apps already run.

Install with ``pip install 'lightwork[celery]'``. The web process sends jobs by name with
``send_task``, so it never imports the worker's Celery app or its tasks; the worker runs
the same ``@offloadable`` functions, registered as Celery tasks under the same names by
:func:`worker_app`:

```python
# myapp/worker.py
from lightwork.backends.celery import worker_app

import myapp.jobs  # noqa: F401 -- registers the @offloadable jobs

app = worker_app("redis://localhost:6379/0")
```

Start it with ``celery -A myapp.worker worker --loglevel=INFO``.

Celery's client blocks and is not thread-safe: every call runs on one thread of its own,
with socket and connect timeouts, so a hung broker cannot hang the web server. Jobs and
results are JSON only (pickle is refused). Celery does not deduplicate: a job delivered
twice (say, from the outbox after a lost reply) may run twice, always under the same id,
which the job sees as ``lightwork.current_job_id()``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .._core._exceptions import MissingDependencyError
from .._core._options import check_duration
from .._core._threads import DedicatedThread
from .._offload._backend import Capabilities, JobSnapshot, JobStatus, OffloadBackend, Submission
from .._offload._exceptions import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
)
from .._offload._registry import Registration, lookup, registrations

try:
    import celery  # type: ignore[import-untyped]
    import celery.exceptions  # type: ignore[import-untyped]
    import kombu.exceptions
    import redis.exceptions
    from celery.backends.base import DisabledBackend  # type: ignore[import-untyped]
    from celery.backends.redis import RedisBackend  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("lightwork.backends.celery", "celery") from exc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from .._offload._payload import JSONValue

__all__ = ["CeleryBackend", "register_tasks", "worker_app"]

SENT: Final = "SENT"
"""The state lightwork stores for a job before sending it, so that Celery's ``PENDING``
(which it says of any id it has never heard of) can be reported as ``UNKNOWN``."""

SEND_OPTIONS: Final = frozenset(
    {"queue", "routing_key", "exchange", "expires", "time_limit", "soft_time_limit", "headers"}
)
"""Celery's own per-job options that ``offload(..., options=)`` passes to ``send_task``."""

PAYLOAD: Final = "__lightwork_payload__"
"""The one keyword argument a job is sent with: its JSON payload, as text. Kombu's JSON
decoder turns dicts shaped like its type tags (``{"__type__": "datetime", ...}``) into
other types; inside a string, the job's arguments reach it unchanged."""

_STATUSES: Final = {
    "PENDING": JobStatus.UNKNOWN,
    SENT: JobStatus.QUEUED,
    "RECEIVED": JobStatus.QUEUED,
    "RETRY": JobStatus.QUEUED,
    "STARTED": JobStatus.RUNNING,
    "SUCCESS": JobStatus.COMPLETED,
    "FAILURE": JobStatus.FAILED,
    "REJECTED": JobStatus.FAILED,
    "REVOKED": JobStatus.CANCELLED,
    "IGNORED": JobStatus.CANCELLED,
}
_JSON_ONLY: Final = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
}


class CeleryBackend(OffloadBackend):
    """Send jobs to Celery workers by name.

    Args:
        broker: the broker URL (``redis://host:port/db``, ``amqp://...``).
        result_backend: where workers store states and results (default: the broker's URL;
            ``None`` after passing ``app=`` means the app's own). Without one, ``status()``
            and ``result()`` raise ``UnsupportedCapabilityError``.
        app: a Celery app of your own for the client side, instead of the one made from
            the URLs; it must be configured for JSON only.
        send_options: ``send_task`` options for every job (``queue``, ``expires``,
            ``time_limit``...); a job's own ``options=`` win.
        socket_timeout: seconds a read or write to the broker or result backend may take.
        connect_timeout: seconds connecting to them may take.
        terminate_on_cancel: let ``cancel()`` kill a running job's worker process (Celery's
            ``revoke(terminate=True)``); by default only jobs not yet started are cancelled.

    Example:
        ```python
        backend = CeleryBackend("redis://localhost:6379/0", send_options={"queue": "heavy"})
        scheduler = Scheduler(offload=Offloader(backend, outbox="/var/lib/app/outbox.db"))
        ```
    """

    def __init__(
        self,
        broker: str = "redis://localhost:6379/0",
        result_backend: str | None = None,
        *,
        app: celery.Celery | None = None,
        send_options: Mapping[str, Any] | None = None,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        terminate_on_cancel: bool = False,
    ) -> None:
        check_duration("socket_timeout", socket_timeout, allow_none=False)
        check_duration("connect_timeout", connect_timeout, allow_none=False)
        if unknown := (send_options or {}).keys() - SEND_OPTIONS:
            raise ValueError(
                f"unknown Celery send option(s) {', '.join(map(repr, sorted(unknown)))}; "
                f"known: {', '.join(sorted(SEND_OPTIONS))}"
            )
        if app is None:
            app = celery.Celery(
                "lightwork-client",
                broker=broker,
                backend=result_backend or broker,
                set_as_current=False,
            )
            app.conf.update(_JSON_ONLY)
        else:
            _check_json_only(app)
        app.conf.update(
            broker_connection_timeout=connect_timeout,
            broker_transport_options={
                **(app.conf.broker_transport_options or {}),
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": connect_timeout,
                "max_retries": 1,  # longer waits are the outbox's job, not the client's
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.2,
            },
            redis_socket_timeout=socket_timeout,
            redis_socket_connect_timeout=connect_timeout,
        )
        self.app = app
        self.send_options = dict(send_options or {})
        self.terminate_on_cancel = terminate_on_cancel
        has_results = bool(app.conf.result_backend)
        self.capabilities = Capabilities(
            dedup=False, delay=True, priority=True, status=has_results, result=has_results,
            cancel=True, remote=True, options=SEND_OPTIONS,
        )  # fmt: skip
        self._thread: DedicatedThread | None = None

    @property
    def destination(self) -> str:
        """``celery:`` and the broker's host, port and path (never the password)."""
        parts = urlsplit(str(self.app.conf.broker_url or ""))
        return f"celery:{parts.hostname}:{parts.port}{parts.path}"

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._thread is None:
            self._thread = DedicatedThread("lightwork-celery")
        with self._translated():
            return await self._thread.run(fn, *args)

    async def submit(self, submission: Submission) -> None:
        """Send the job by name; mark it ``SENT`` in the result backend first."""
        await self._call(self._send, submission)

    def _send(self, submission: Submission) -> None:
        backend = self.app.backend
        if not backend.thread_safe:  # this thread's own
            # Celery's Redis result backend subscribes to a job's result as it is sent, to
            # wait for it over pubsub, and unsubscribes when the `AsyncResult` is collected:
            # two commands a job, on a connection of their own that the collector may open
            # again after aclose(), for a wait this client never makes (it reads by key).
            backend.on_task_call = _no_subscription
        if self.capabilities.status:
            # Before sending, so that the worker's own states always come after ours.
            backend.store_result(submission.job_id, None, SENT)
        self.app.send_task(
            submission.name,
            kwargs={PAYLOAD: submission.payload},
            task_id=submission.job_id,
            countdown=submission.delay,
            priority=submission.priority,
            serializer="json",
            retry=False,
            **{**self.send_options, **submission.options},
        )

    def check_options(self, options: Mapping[str, JSONValue]) -> None:
        """Refuse ``send_task`` option values that Celery would fail on at the hand-off."""
        for option in ("queue", "routing_key", "exchange"):
            if option in options and (not isinstance(options[option], str) or not options[option]):
                raise TypeError(
                    f"options[{option!r}] must be a non-empty string, not {options[option]!r}"
                )
        for option in ("time_limit", "soft_time_limit"):
            if option in options:
                check_duration(f"options[{option!r}]", options[option])
        expires = options.get("expires")
        if isinstance(expires, str):
            try:
                datetime.datetime.fromisoformat(expires)
            except ValueError:
                raise ValueError(
                    f"options['expires'] must be seconds or an ISO 8601 date and time, "
                    f"not {expires!r}"
                ) from None
        else:
            check_duration("options['expires']", expires)
        if "headers" in options and not isinstance(options["headers"], dict):
            raise TypeError(f"options['headers'] must be a dict, not {options['headers']!r}")

    async def inspect(self, job_id: str) -> JobSnapshot:
        """Return the job's state in the result backend; ``PENDING`` reads as ``UNKNOWN``."""
        if not self.capabilities.status:
            raise self.unsupported("tell a job's status without a result backend")
        snapshot: JobSnapshot = await self._call(self._inspect, job_id)
        return snapshot

    def _inspect(self, job_id: str) -> JobSnapshot:
        meta = self.app.backend.get_task_meta(job_id)
        state = str(meta.get("status", "PENDING"))
        status = _STATUSES.get(state, JobStatus.RUNNING)  # a task's custom state: running
        if status is JobStatus.COMPLETED:
            return JobSnapshot(status, meta.get("result"))
        if status in (JobStatus.FAILED, JobStatus.CANCELLED):
            error = meta.get("traceback") or f"{state}: {meta.get('result')!r}"
            return JobSnapshot(status, error=str(error))
        return JobSnapshot(status)

    async def cancel(self, job_id: str) -> bool:
        """Revoke the job; return ``False`` if it has ended, or is running and may not be killed.

        A running job is killed only with ``terminate_on_cancel``.
        """
        cancelled: bool = await self._call(self._revoke, job_id)
        return cancelled

    def _revoke(self, job_id: str) -> bool:
        if self.capabilities.status:
            status = self._inspect(job_id).status
            if status.done or (status is JobStatus.RUNNING and not self.terminate_on_cancel):
                return False  # ended, or running and not to be killed: it will run to its end
        self.app.control.revoke(job_id, terminate=self.terminate_on_cancel)
        if self.capabilities.status:
            self.app.backend.store_result(job_id, None, "REVOKED")
        return True

    async def aclose(self) -> None:
        """Close the client's connections and end its thread; the next call starts anew.

        Connections to the broker stay in kombu's pool, which every Celery app of the
        process sending to the same broker shares (and kombu closes when the process ends).
        """
        thread, self._thread = self._thread, None
        if thread is not None:
            with self._translated():
                await thread.run(self._close)
            thread.close()

    def _close(self) -> None:
        # Celery gives each thread its own result backend, and `app.close()` leaves a Redis
        # one connected: this thread's is closed here, not left for the garbage collector.
        # One shared by every thread (`result_backend_thread_safe`) is the app's to close.
        backend = self.app.backend
        if isinstance(backend, RedisBackend) and not backend.thread_safe:
            backend.client.connection_pool.disconnect()
        self.app.close()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.TimeoutError, TimeoutError) as exc:
            raise BackendTimeoutError(f"{self.destination} did not answer in time: {exc}") from exc
        except (
            kombu.exceptions.OperationalError,
            redis.exceptions.ConnectionError,
            OSError,
        ) as exc:
            raise BackendUnavailableError(f"{self.destination} is unreachable: {exc}") from exc
        except Exception as exc:
            raise BackendError(f"Celery failed: {exc!r}") from exc


def _no_subscription(producer: object, task_id: str) -> dict[str, Any]:
    """A result backend's ``on_task_call`` that subscribes to nothing, as the base one does."""
    return {}


def _check_json_only(app: celery.Celery) -> None:
    conf = app.conf
    if (
        conf.task_serializer != "json"
        or conf.result_serializer != "json"
        or any(
            content.split("/")[-1] != "json"
            for content in [*conf.accept_content, *(conf.result_accept_content or [])]
        )
    ):
        raise ValueError(
            "the Celery app must send and accept JSON only (no pickle across the network): "
            "set task_serializer='json', result_serializer='json', accept_content=['json'] "
            "and result_accept_content=['json']"
        )


def worker_app(
    broker: str = "redis://localhost:6379/0",
    result_backend: str | None = None,
    *,
    main: str = "lightwork",
    names: Iterable[str] | None = None,
    **conf: Any,
) -> celery.Celery:
    """Return a Celery app for the worker that runs the ``@offloadable`` jobs under their names.

    Import the modules that define the jobs first, so that they are registered. The app
    speaks JSON only and reports ``STARTED``, so ``status()`` can tell running from queued.

    Args:
        broker: the broker URL, as given to :class:`CeleryBackend`.
        result_backend: the result backend's URL (default: the broker's).
        main: the app's name.
        names: the jobs to serve (default: every registered job).
        **conf: any other Celery setting (``worker_concurrency``, ``task_acks_late``...).

    Example:
        ```python
        app = worker_app("redis://localhost:6379/0")  # then: celery -A myapp.worker worker
        ```
    """
    app = celery.Celery(main, broker=broker, backend=result_backend or broker)
    app.conf.update(_JSON_ONLY, task_track_started=True, **conf)
    register_tasks(app, names)
    return app


def register_tasks(
    app: celery.Celery, names: Iterable[str] | None = None, **task_options: Any
) -> list[str]:
    """Register ``@offloadable`` jobs as Celery tasks of *app*, under the jobs' names.

    For an app of your own; :func:`worker_app` calls it for you.

    Args:
        app: the worker's Celery app.
        names: the jobs to register (default: every registered job).
        **task_options: options for every task (``max_retries``, ``acks_late``...).

    Returns:
        The names registered.
    """
    chosen = registrations() if names is None else {name: lookup(name) for name in names}
    # The body marks the job STARTED itself, once it has checked that it was not revoked:
    # Celery's own mark would come first, and hide lightwork's REVOKED.
    track_started: bool | None = task_options.pop("track_started", None)
    for name, registration in chosen.items():
        body = _task_body(registration, track_started)
        app.task(name=name, bind=True, track_started=False, **task_options)(body)
    return list(chosen)


def _task_body(registration: Registration, track_started: bool | None) -> Callable[..., Any]:
    def run(task: celery.Task, *args: Any, **kwargs: Any) -> Any:
        request = task.request
        if not args and kwargs.keys() == {PAYLOAD} and isinstance(kwargs[PAYLOAD], str):
            arguments = json.loads(kwargs[PAYLOAD])  # plain JSON: no kombu type tags
            args, kwargs = arguments["args"], arguments["kwargs"]
        if not (
            request.called_directly
            or request.is_eager
            or task.ignore_result
            or isinstance(task.backend, DisabledBackend)
        ):
            # A revoke reaches only the workers online when it is sent; CeleryBackend also
            # marks the job REVOKED in the result backend, for any worker to see.
            if task.backend.get_task_meta(request.id).get("status") == "REVOKED":
                raise celery.exceptions.Ignore  # stores no state: the job stays REVOKED
            if task.app.conf.task_track_started if track_started is None else track_started:
                started = {"pid": os.getpid(), "hostname": request.hostname}
                task.backend.store_result(request.id, started, "STARTED", request=request)
        value = registration.run(list(args), kwargs, request.id)
        try:  # as the other engines: strict JSON, not kombu's, which also carries dates
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"job {registration.name!r} returned a value JSON cannot carry: {exc}"
            ) from exc
        return value

    run.__doc__ = registration.function.__doc__
    return run
