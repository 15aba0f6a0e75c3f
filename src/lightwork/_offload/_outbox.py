"""The durable local outbox: jobs the engine could not take yet, kept in SQLite until it can.

Rows are kept per destination (one engine queue), so apps that share a file do not deliver
each other's jobs. Several processes may share one outbox: a row is leased while one of
them delivers it. Every call runs on the outbox's own thread, which owns the connection.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from .._core._options import check_duration
from .._core._threads import DedicatedThread

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping

    from .._core._handle import TaskHandle
    from ._payload import Arguments, JSONValue

DEFAULT_OUTBOX_PATH: Final = "lightwork-outbox.sqlite3"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    destination TEXT NOT NULL, job_id TEXT NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL,
    run_at REAL, priority INTEGER, options TEXT NOT NULL, created_at REAL NOT NULL,
    attempts INTEGER NOT NULL, retry_at REAL NOT NULL, leased_until REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL,
    PRIMARY KEY (destination, job_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, retry_at);
CREATE TABLE IF NOT EXISTS dead_letter (
    destination TEXT NOT NULL, job_id TEXT NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL,
    run_at REAL, priority INTEGER, options TEXT NOT NULL, created_at REAL NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT NOT NULL, failed_at REAL NOT NULL,
    PRIMARY KEY (destination, job_id)
);
"""
_INSERT: Final = """
INSERT OR IGNORE INTO outbox (destination, job_id, name, payload, run_at, priority, options,
    created_at, attempts, retry_at, last_error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_DUE: Final = """
SELECT job_id, name, payload, run_at, priority, options, created_at, attempts FROM outbox
WHERE destination = ? AND retry_at <= ? AND leased_until <= ? ORDER BY retry_at, created_at
"""
_SELECT_DUE_OR_CLAIMED: Final = """
SELECT job_id, name, payload, run_at, priority, options, created_at, attempts FROM outbox
WHERE destination = ? AND ((retry_at <= ? AND leased_until <= ?) OR job_id = ?)
"""
_DELETE: Final = "DELETE FROM outbox WHERE destination = ? AND job_id = ?"
_DELETE_UNLEASED: Final = _DELETE + " AND leased_until <= ?"
_DELETE_DEAD_LETTER: Final = "DELETE FROM dead_letter WHERE destination = ? AND job_id = ?"
_TO_DEAD_LETTER: Final = """
INSERT OR REPLACE INTO dead_letter (destination, job_id, name, payload, run_at, priority,
    options, created_at, attempts, last_error, failed_at)
SELECT destination, job_id, name, payload, run_at, priority, options, created_at, ?, ?, ?
FROM outbox WHERE destination = ? AND job_id = ?
"""
_FROM_DEAD_LETTER: Final = """
INSERT OR REPLACE INTO outbox (destination, job_id, name, payload, run_at, priority, options,
    created_at, attempts, retry_at, last_error)
SELECT destination, job_id, name, payload, run_at, priority, options, created_at, 0, 0,
    last_error
FROM dead_letter WHERE destination = ? AND job_id = ?
"""


@dataclass(slots=True)
class PendingJob:
    """A validated job on its way to the engine: what the outbox stores for each one.

    Never changed once made but for ``hand_off``, which is not stored; not frozen: every
    ``offload()`` makes one, and a frozen dataclass sets each field through
    ``object.__setattr__``, at twice the cost.
    """

    name: str
    job_id: str
    payload: str
    run_at: float | None = None
    """When the job should start (epoch seconds), if it was offloaded with a delay."""
    priority: int | None = None
    options: Mapping[str, JSONValue] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    attempts: int = 0
    """Delivery rounds that found the engine unreachable so far."""
    fresh_id: bool = False
    """lightwork made the id at ``offload()``, so no earlier delivery of it can exist; never
    true for a job read back from the outbox."""
    arguments: Arguments | None = field(default=None, compare=False, repr=False)
    """The payload decoded, kept from ``offload()``; never stored: a job read back from the
    outbox decodes its payload."""
    hand_off: TaskHandle[Any] | None = field(default=None, compare=False, repr=False)
    """The task that hands the job over, from ``offload()`` until that task's first step;
    never stored."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job lightwork gave up handing to its engine; ``retry_dead_letters()`` revives it."""

    job_id: str
    name: str
    payload: str
    """The job's arguments, as the JSON text that was to be sent."""
    attempts: int
    error: str
    """Why the last attempt failed."""
    failed_at: datetime


class Outbox:
    """A durable local outbox, in a SQLite file, for jobs the engine could not take yet.

    A job whose hand-off fails because the engine is unreachable or slow is written here
    and retried in rounds, with exponential backoff and jitter, until the engine takes it;
    jobs left here when the app stopped are delivered when it starts again. After
    ``max_attempts`` rounds a job moves to the dead-letter table, which
    ``offloader.dead_letters()`` lists and ``offloader.retry_dead_letters()`` empties.

    Args:
        path: the SQLite file, created when a job is first deferred. Keep it on a disk that
            outlives the app's restarts (not a container's temporary layer).
        max_attempts: delivery rounds before a job is given up; ``None`` for never.
        backoff: seconds before the first retry; each round doubles it, with jitter.
        max_backoff: the longest wait between two rounds, in seconds.

    Example:
        ```python
        offloader = Offloader(SaqBackend("redis://localhost"), outbox=Outbox(
            "/var/lib/myapp/outbox.sqlite3", max_attempts=50, max_backoff=60))
        ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_OUTBOX_PATH,
        *,
        max_attempts: int | None = 20,
        backoff: float = 0.5,
        max_backoff: float = 300.0,
    ) -> None:
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(
                f"max_attempts must be a positive integer or None, not {max_attempts!r}"
            )
        check_duration("backoff", backoff, allow_none=False)
        check_duration("max_backoff", max_backoff, allow_none=False)
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._thread: DedicatedThread | None = None
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<Outbox {str(self.path)!r} max_attempts={self.max_attempts}>"

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the *attempts*-th failed round: exponential, with jitter."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** min(attempts - 1, 62))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 -- jitter, not crypto

    # -- the thread and the connection ------------------------------------------------------

    async def _run(self, fn: Any, /, *args: Any) -> Any:
        if self._thread is None:
            self._thread = DedicatedThread("lightwork-outbox")
        return await self._thread.run(fn, *args)

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an outbox that loses jobs is no outbox
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _write(self) -> sqlite3.Connection:
        db = self._connect(create=True)
        assert db is not None
        return db

    async def aclose(self) -> None:
        """Close the connection and end the outbox's thread."""
        if self._thread is not None:
            await self._thread.run(self._close_db)
            self._thread.close()
            self._thread = None

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- deferring and delivering -----------------------------------------------------------

    async def put(self, destination: str, job: PendingJob, error: str) -> float:
        """Keep *job* for a later round; return when that round is due (epoch seconds)."""
        return float(await self._run(self._put, destination, job, error))

    def put_blocking(self, destination: str, job: PendingJob, error: str) -> float:
        """Like :meth:`put`, but block the caller: for a job cancelled at shutdown.

        Works on a closed outbox too, without leaving a thread or a connection open.
        """
        if self._thread is not None:
            return float(self._thread.call(self._put, destination, job, error))
        thread = DedicatedThread("lightwork-outbox")
        try:
            return float(thread.call(self._put_and_close, destination, job, error))
        finally:
            thread.close()

    def _put_and_close(self, destination: str, job: PendingJob, error: str) -> float:
        try:
            return self._put(destination, job, error)
        finally:
            self._close_db()

    def _put(self, destination: str, job: PendingJob, error: str) -> float:
        retry_at = time.time() + self.retry_delay(job.attempts + 1)
        self._write().execute(_INSERT, _row(destination, job, job.attempts + 1, retry_at, error))
        return retry_at

    async def claim(self, destination: str, lease_s: float) -> PendingJob | None:
        """Lease the next due job for delivery, or return ``None`` if none is due."""
        result: PendingJob | None = await self._run(self._claim, destination, lease_s)
        return result

    def _claim(self, destination: str, lease_s: float) -> PendingJob | None:
        db = self._connect(create=False)
        if db is None:
            return None
        now = time.time()
        with _transaction(db):
            row = db.execute(_SELECT_DUE + "LIMIT 1", (destination, now, now)).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE outbox SET leased_until = ? WHERE destination = ? AND job_id = ?",
                (now + lease_s, destination, row[0]),
            )
        return _pending(row)

    async def delivered(self, destination: str, job_id: str) -> None:
        """Forget a job the engine has taken."""
        await self._run(self._delete, destination, job_id)

    def _delete(self, destination: str, job_id: str) -> None:
        db = self._connect(create=False)
        if db is not None:
            db.execute(_DELETE, (destination, job_id))

    async def discard(self, destination: str, job_id: str) -> bool:
        """Remove a waiting job or a dead letter, so it is never sent; return whether it was.

        A job a round is delivering right now (its lease is live) is not removed: the
        engine may be taking it, so only the engine can cancel it.
        """
        return bool(await self._run(self._discard, destination, job_id))

    def _discard(self, destination: str, job_id: str) -> bool:
        db = self._connect(create=False)
        if db is None:
            return False
        with _transaction(db):
            waiting = db.execute(_DELETE_UNLEASED, (destination, job_id, time.time())).rowcount
            dead = db.execute(_DELETE_DEAD_LETTER, (destination, job_id)).rowcount
        return waiting + dead > 0

    async def postpone_due(
        self, destination: str, error: str, claimed: str
    ) -> tuple[list[PendingJob], list[PendingJob]]:
        """Count a failed round against *claimed* and every due job; return (postponed, given up).

        When the engine is unreachable, it is so for every job that was due: one failed
        delivery counts as an attempt for all of them, without hammering the engine.
        """
        result: tuple[list[PendingJob], list[PendingJob]] = await self._run(
            self._postpone_due, destination, error, claimed
        )
        return result

    def _postpone_due(
        self, destination: str, error: str, claimed: str
    ) -> tuple[list[PendingJob], list[PendingJob]]:
        db = self._write()
        now = time.time()
        postponed: list[PendingJob] = []
        given_up: list[PendingJob] = []
        with _transaction(db):
            rows = db.execute(_SELECT_DUE_OR_CLAIMED, (destination, now, now, claimed)).fetchall()
            for row in rows:
                job = _pending(row)
                attempts = job.attempts + 1
                if self.max_attempts is not None and attempts >= self.max_attempts:
                    db.execute(_TO_DEAD_LETTER, (attempts, error, now, destination, job.job_id))
                    db.execute(_DELETE, (destination, job.job_id))
                    given_up.append(job)
                else:
                    retry_at = now + self.retry_delay(attempts)
                    db.execute(
                        "UPDATE outbox SET attempts = ?, retry_at = ?, leased_until = 0, "
                        "last_error = ? WHERE destination = ? AND job_id = ?",
                        (attempts, retry_at, error, destination, job.job_id),
                    )
                    postponed.append(job)
        return postponed, given_up

    async def give_up(self, destination: str, job: PendingJob, error: str) -> None:
        """Move a job straight to the dead-letter table: the engine refused it for good."""
        await self._run(self._give_up, destination, job, error)

    def _give_up(self, destination: str, job: PendingJob, error: str) -> None:
        db = self._write()
        now = time.time()
        with _transaction(db):
            db.execute(_INSERT, _row(destination, job, job.attempts, now, error))
            db.execute(_TO_DEAD_LETTER, (job.attempts + 1, error, now, destination, job.job_id))
            db.execute(_DELETE, (destination, job.job_id))

    async def next_due(self, destination: str) -> float | None:
        """Return when the next round is due (epoch seconds), or ``None`` if nothing waits."""
        result: float | None = await self._run(self._next_due, destination)
        return result

    def _next_due(self, destination: str) -> float | None:
        db = self._connect(create=False)
        if db is None:
            return None
        (due,) = db.execute(
            "SELECT MIN(MAX(retry_at, leased_until)) FROM outbox WHERE destination = ?",
            (destination,),
        ).fetchone()
        return None if due is None else float(due)

    async def replay(self, destination: str, before: float) -> int:
        """Make every job offloaded *before* a time (a restart) due now; return how many.

        Jobs offloaded since then keep their backoff: they failed moments ago.
        """
        return int(await self._run(self._replay, destination, before))

    def _replay(self, destination: str, before: float) -> int:
        db = self._connect(create=False)
        if db is None:
            return 0
        with _transaction(db):
            now = time.time()
            db.execute(
                "UPDATE outbox SET retry_at = ? "
                "WHERE destination = ? AND retry_at > ? AND created_at < ?",
                (now, destination, now, before),
            )
            (count,) = db.execute(
                "SELECT COUNT(*) FROM outbox WHERE destination = ? AND created_at < ?",
                (destination, before),
            ).fetchone()
            return int(count)

    async def count(self, destination: str) -> int:
        """Return how many jobs wait in the outbox (not counting dead letters)."""
        return int(await self._run(self._count, destination))

    def _count(self, destination: str) -> int:
        db = self._connect(create=False)
        if db is None:
            return 0
        (count,) = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE destination = ?", (destination,)
        ).fetchone()
        return int(count)

    async def where(self, destination: str, job_id: str) -> Literal["outbox", "dead"] | None:
        """Tell whether a job waits in the outbox, was given up, or is in neither."""
        result: Literal["outbox", "dead"] | None = await self._run(self._where, destination, job_id)
        return result

    def _where(self, destination: str, job_id: str) -> Literal["outbox", "dead"] | None:
        db = self._connect(create=False)
        if db is None:
            return None
        row = db.execute(
            "SELECT 'outbox' FROM outbox WHERE destination = ? AND job_id = ? UNION ALL "
            "SELECT 'dead' FROM dead_letter WHERE destination = ? AND job_id = ?",
            (destination, job_id, destination, job_id),
        ).fetchone()
        return None if row is None else cast("Literal['outbox', 'dead']", row[0])

    # -- the dead-letter table --------------------------------------------------------------

    async def dead_letter_error(self, destination: str, job_id: str) -> str | None:
        """Return why a dead letter was given up, or ``None`` if there is no such dead letter."""
        error: str | None = await self._run(self._dead_letter_error, destination, job_id)
        return error

    def _dead_letter_error(self, destination: str, job_id: str) -> str | None:
        db = self._connect(create=False)
        if db is None:
            return None
        row = db.execute(
            "SELECT last_error FROM dead_letter WHERE destination = ? AND job_id = ?",
            (destination, job_id),
        ).fetchone()
        return None if row is None else str(row[0])

    async def dead_letters(self, destination: str) -> list[DeadLetter]:
        """Return the jobs given up, oldest first."""
        result: list[DeadLetter] = await self._run(self._dead_letters, destination)
        return result

    def _dead_letters(self, destination: str) -> list[DeadLetter]:
        db = self._connect(create=False)
        if db is None:
            return []
        rows = db.execute(
            "SELECT job_id, name, payload, attempts, last_error, failed_at FROM dead_letter "
            "WHERE destination = ? ORDER BY failed_at, created_at",
            (destination,),
        ).fetchall()
        return [
            DeadLetter(job_id, name, payload, attempts, error, datetime.fromtimestamp(at, UTC))
            for job_id, name, payload, attempts, error, at in rows
        ]

    async def requeue(self, destination: str, job_ids: tuple[str, ...]) -> int:
        """Move dead letters (all, if *job_ids* is empty) back to the outbox, due now."""
        return int(await self._run(self._requeue, destination, job_ids))

    def _requeue(self, destination: str, job_ids: tuple[str, ...]) -> int:
        db = self._connect(create=False)
        if db is None:
            return 0
        with _transaction(db):
            if not job_ids:
                job_ids = tuple(
                    job_id
                    for (job_id,) in db.execute(
                        "SELECT job_id FROM dead_letter WHERE destination = ?", (destination,)
                    )
                )
            moved = 0
            for job_id in job_ids:
                moved += db.execute(_FROM_DEAD_LETTER, (destination, job_id)).rowcount
                db.execute(_DELETE_DEAD_LETTER, (destination, job_id))
        return moved


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: other processes wait rather than see half a change."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _row(
    destination: str, job: PendingJob, attempts: int, retry_at: float, error: str
) -> tuple[Any, ...]:
    return (
        destination, job.job_id, job.name, job.payload, job.run_at, job.priority,
        json.dumps(job.options), job.created_at, attempts, retry_at, error,
    )  # fmt: skip


def _pending(row: tuple[Any, ...]) -> PendingJob:
    job_id, name, payload, run_at, priority, options, created_at, attempts = row
    return PendingJob(
        name=name,
        job_id=job_id,
        payload=payload,
        run_at=run_at,
        priority=priority,
        options=json.loads(options),
        created_at=created_at,
        attempts=attempts,
    )
