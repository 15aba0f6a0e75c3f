"""The offload adapter protocol: what a backend must do to take jobs to an engine.

Modelled on httpx's transports: one small base class, a handful of async methods, and an
in-memory double (:class:`lightwork.backends.MemoryBackend`) built on the same contract.
A backend only translates: validation, timeouts, the outbox and logging live in the
``Offloader``, so each engine's module stays a thin, testable layer.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._exceptions import UnsupportedCapabilityError
from ._payload import decode_arguments

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._payload import Arguments, JSONValue


class JobStatus(enum.StrEnum):
    """Where an offloaded job is; ``await ref.status()`` returns one of these."""

    SUBMITTING = "submitting"
    """Not handed to the engine yet: waiting for the response to be sent, or being enqueued."""
    DEFERRED = "deferred"
    """In the local outbox: the engine could not be reached; it is retried with backoff."""
    QUEUED = "queued"
    """Taken by the engine, waiting for a worker (or for its delay to pass)."""
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    """The job raised, timed out or its worker died (the engine's retries are used up)."""
    CANCELLED = "cancelled"
    DROPPED = "dropped"
    """Never handed over: its request failed, or the app was shutting down."""
    UNDELIVERED = "undelivered"
    """lightwork gave up handing it to the engine; it waits in the outbox's dead-letter table."""
    UNKNOWN = "unknown"
    """The engine does not know this id: never enqueued there, or its record has expired."""

    @property
    def done(self) -> bool:
        """Whether the job will not change status any more (short of a dead-letter retry)."""
        return self in _FINAL


_FINAL = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.DROPPED,
        JobStatus.UNDELIVERED,
    }
)


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """What an engine knows of a job at one moment."""

    status: JobStatus
    result: JSONValue = None
    """The job's return value, once ``status`` is ``COMPLETED`` and the engine keeps results."""
    error: str | None = None
    """The engine's account of a failure or cancellation (often a traceback), as text."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can do; the ``Offloader`` refuses, at the call site, what it cannot.

    Asking for a capability the engine lacks raises
    :class:`~lightwork.UnsupportedCapabilityError`: never a silent no-op.
    """

    dedup: bool = False
    """The same job id enqueued twice runs once (while the engine remembers the id)."""
    delay: bool = False
    """Jobs may start after a delay."""
    priority: bool = False
    """Jobs may carry a priority."""
    status: bool = False
    """The engine can tell a job's status by its id."""
    result: bool = False
    """The engine keeps a job's return value for the caller to fetch."""
    cancel: bool = False
    """Jobs can be cancelled (aborted or revoked) by id."""
    remote: bool = True
    """The engine runs elsewhere and may be unreachable: jobs then wait in the outbox."""
    options: frozenset[str] = field(default_factory=frozenset)
    """The engine's own per-job options that ``offload(..., options=)`` may pass through."""


@dataclass(slots=True)
class Submission:
    """One job, as a backend receives it: a name, an id and JSON-safe arguments.

    ``args`` and ``kwargs`` are ``payload`` decoded (plain scalars, which JSON gives back
    unchanged, are copied instead), so they are exactly what a worker will receive, whichever
    engine carries them. A backend reads it and never changes it; it is not frozen because
    one is made for every delivery attempt, and a frozen dataclass sets each of its fields
    through ``object.__setattr__``, which cost 8% of a hand-off.
    """

    name: str
    job_id: str
    """The idempotency key: the same id on every delivery attempt, so a worker can tell a repeat."""
    payload: str
    """The arguments as JSON text: ``{"args": [...], "kwargs": {...}}``."""
    args: list[JSONValue]
    kwargs: dict[str, JSONValue]
    delay: float | None = None
    """Seconds to wait before running, still left at this delivery attempt."""
    priority: int | None = None
    options: Mapping[str, JSONValue] = field(default_factory=dict)
    """Engine-specific options, passed through as given (see ``Capabilities.options``)."""
    first_delivery: bool = False
    """No earlier attempt can have reached the engine (lightwork made the id, and this is its
    first try), so a backend may skip a check for a duplicate."""

    @classmethod
    def from_payload(
        cls,
        name: str,
        job_id: str,
        payload: str,
        *,
        delay: float | None = None,
        priority: int | None = None,
        options: Mapping[str, JSONValue] | None = None,
        first_delivery: bool = False,
        arguments: Arguments | None = None,
    ) -> Submission:
        """Build a submission from the JSON payload lightwork encoded at ``offload()`` time.

        *arguments*, the payload already decoded, spares decoding it again.
        """
        args, kwargs = decode_arguments(payload) if arguments is None else arguments
        return cls(
            name=name,
            job_id=job_id,
            payload=payload,
            args=args,
            kwargs=kwargs,
            delay=delay,
            priority=priority,
            options=dict(options or {}),
            first_delivery=first_delivery,
        )


class OffloadBackend(abc.ABC):
    """The base class of every offload backend: the adapter between lightwork and an engine.

    A backend implements :meth:`submit`, and :meth:`inspect` and :meth:`cancel` where the
    engine can; it declares what it can do in :attr:`capabilities`. Every engine error is
    translated at this boundary into :class:`~lightwork.BackendUnavailableError` (the
    engine cannot be reached: the job is kept in the outbox and retried),
    :class:`~lightwork.BackendTimeoutError`, or :class:`~lightwork.BackendError` (anything
    else), with ``raise ... from exc``. The ``Offloader`` bounds every call with its own
    timeout too; a backend should still set its client's socket timeouts, so that a call
    it abandons does not hold a connection or a thread for long.

    Example:
        ```python
        class MyBackend(OffloadBackend):
            capabilities = Capabilities(dedup=True)

            async def submit(self, submission: Submission) -> None:
                try:
                    await my_engine.enqueue(submission.name, submission.payload,
                                            key=submission.job_id)
                except my_engine.ConnectionError as exc:
                    raise BackendUnavailableError(f"my engine is down: {exc}") from exc
        ```
    """

    capabilities: Capabilities = Capabilities()

    @property
    def destination(self) -> str:
        """Names the queue jobs go to, without credentials; outbox rows are kept per destination."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.destination}>"

    @abc.abstractmethod
    async def submit(self, submission: Submission) -> None:
        """Hand the job to the engine; return once the engine has it."""

    def check_options(self, options: Mapping[str, JSONValue]) -> None:  # noqa: B027 -- optional
        """Raise ``TypeError`` or ``ValueError`` for an engine option this engine would refuse.

        Called at ``offload()``, with option names already checked against
        ``capabilities.options``, so that a bad value fails at the call rather than at the
        hand-off, after the response. The default accepts every value.
        """

    async def inspect(self, job_id: str) -> JobSnapshot:
        """Return what the engine knows of the job (``UNKNOWN`` if nothing)."""
        raise self.unsupported("tell a job's status")

    async def cancel(self, job_id: str) -> bool:
        """Cancel the job; return ``False`` if it had already ended or is unknown."""
        raise self.unsupported("cancel jobs")

    async def aclose(self) -> None:  # noqa: B027 -- optional: most backends hold nothing
        """Release connections and threads; called once, when the ``Offloader`` closes."""

    def unsupported(self, what: str) -> UnsupportedCapabilityError:
        """Return the error to raise when asked for something this engine cannot do."""
        return UnsupportedCapabilityError(
            f"{type(self).__name__} cannot {what}: its engine does not support it "
            f"(capabilities: {self.capabilities})"
        )
