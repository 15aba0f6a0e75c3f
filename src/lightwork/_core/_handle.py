"""The task handle returned by ``add_task``, and the states a task goes through."""

from __future__ import annotations

import asyncio
import enum
import itertools
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from mypy_extensions import trait

from ._awaiting import outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator
    from contextvars import Context

    from ._types import RunIf

T = TypeVar("T")


class TaskState(enum.StrEnum):
    """Where a task is in its life; each task ends in exactly one of the terminal states.

    Terminal: all but ``PENDING`` and ``RUNNING`` (see ``TERMINAL_STATES``).
    """

    PENDING = "pending"
    """Accepted, not started: waiting for its request's response, or for a free slot."""
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    DROPPED = "dropped"
    """Never started: its request failed, the queue was full, or the scheduler had closed."""
    OFFLOADED = "offloaded"
    """Handed to the offload bridge instead: the queue was full, or shutdown spilled it."""


# For the hot path: on Python 3.11, each read of an enum class's attribute goes through
# ``EnumType.__getattr__`` and costs ten times a module global's.
PENDING: Final = TaskState.PENDING
RUNNING: Final = TaskState.RUNNING
COMPLETED: Final = TaskState.COMPLETED

# The bits of ``TaskHandle._flags``: one int instead of four slots, 24 bytes a task.
SHIELDED: Final = 1
SLOW_LOGGED: Final = 2
HOLDS_SLOT: Final = 4
"""It holds one of the scheduler's ``max_concurrency`` slots."""
RESERVED: Final = 8
"""It keeps room (a slot or a queue place) while its request has not released it."""

_next_id: Final = itertools.count(1).__next__
"""Ids in the order tasks are added: a bound method, called natively (``next(_ids)``, compiled,
looks ``next`` up among the builtins every time)."""

TERMINAL_STATES: Final = tuple(
    s for s in TaskState if s not in (TaskState.PENDING, TaskState.RUNNING)
)


@trait
class TaskOwner:
    """What a handle, and the coroutine driver running its task, ask of their scheduler.

    A trait, not a ``Protocol``: the compiled core calls a trait's methods natively, and a
    protocol's through Python attribute lookups, several times a task.
    """

    _loop: asyncio.AbstractEventLoop | None
    _waiters: dict[TaskHandle[Any], asyncio.Future[None]]

    def _loop_for_waiting(self) -> asyncio.AbstractEventLoop:
        raise NotImplementedError

    def _cancel(self, handle: TaskHandle[Any], reason: str) -> bool:
        raise NotImplementedError

    def _on_first_step(self, handle: TaskHandle[Any], now: float) -> None:
        raise NotImplementedError

    def _on_first_wait(self, handle: TaskHandle[Any]) -> None:
        raise NotImplementedError

    def _arm_soon(self, handle: TaskHandle[Any]) -> None:
        raise NotImplementedError

    def _on_longest_step(self, handle: TaskHandle[Any], step: float, stack: str = "") -> None:
        raise NotImplementedError

    def _on_end(
        self, handle: TaskHandle[Any], error: BaseException | None, result: object, end: float
    ) -> None:
        raise NotImplementedError


class TaskHandle(Generic[T]):
    """A background task, as returned by ``add_task``; awaiting it gives the task's outcome.

    ``await handle`` returns the task's result or raises what ended it: the task's own
    exception, `TaskTimeoutError`, `TaskCancelledError`, `TaskDroppedError` or
    `TaskOffloadedError` (whose ``job`` follows the task to the offload bridge).
    Awaiting never affects the task, and a handle may be awaited any number of times, from
    the scheduler's event loop.

    Example:
        ```python
        handle = background.add_task(fetch_avatar(user_id), timeout=5)
        handle.cancel()
        ```
    """

    # One of these exists per task: keep it slotted and free of references to the request.
    __slots__ = (
        "_args",
        "_cancel_reason",
        "_context",
        "_coro",
        "_deadline",
        "_ended_at",
        "_flags",
        "_job",
        "_on_complete",
        "_on_error",
        "_outcome",
        "_run_if",
        "_scheduler",
        "_started_at",
        "_stats",
        "_task",
        "block_threshold",
        "blocked",
        "id",
        "longest_step",
        "name",
        "route",
        "slow_threshold",
        "state",
        "timeout",
    )

    id: int
    """Unique within the process, in the order tasks were added."""
    name: str
    state: TaskState
    timeout: float | None
    slow_threshold: float | None
    block_threshold: float | None
    blocked: float
    """Seconds the task's steps have held the event loop, in all."""
    longest_step: float
    """Seconds of the longest single step: what the loop waited for at once."""
    route: str | None
    """The request that added the task, as ``"GET /path"``; ``None`` outside requests."""

    def __init__(
        self,
        scheduler: TaskOwner,
        name: str,
        coro: Coroutine[Any, Any, T],
        context: Context,
        timeout: float | None,
        slow_threshold: float | None,
        block_threshold: float | None,
        on_complete: Callable[[Any], object] | None,
        on_error: Callable[[BaseException], object] | None,
        run_if: RunIf | None,
        shield: bool,
    ) -> None:
        self._scheduler = scheduler
        self.id = _next_id()
        self.name = name
        self.state = PENDING
        self.timeout = timeout
        self.slow_threshold = slow_threshold
        self.block_threshold = block_threshold
        self._flags = SHIELDED if shield else 0
        self.blocked = 0.0
        self.longest_step = 0.0
        self.route: str | None = None
        self._ended_at = 0.0  # when its last step ended; a float, unboxed, as `_started_at`
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._context = context
        self._on_complete = on_complete
        self._on_error = on_error
        self._run_if = run_if
        self._task: asyncio.Task[T] | None = None
        # The bucket of the scheduler's Deadlines it is armed in, while armed. Typed `object`:
        # _deadlines imports this module, so this one cannot import its Bucket.
        self._deadline: object = None
        self._started_at = 0.0
        # Its name's statistics, found once, by ``TaskStats.added``. Typed `object`, as
        # `_deadline` is: _stats imports this module.
        self._stats: object = None
        self._cancel_reason: str | None = None
        self._outcome: object = None
        self._args: str | None = None
        self._job: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None = None

    @property
    def shield(self) -> bool:
        """Whether shutdown lets the task run past ``drain_timeout``, up to ``shield_timeout``."""
        return bool(self._flags & SHIELDED)

    @property
    def duration(self) -> float | None:
        """Seconds the task has run so far, or ran in all once ended; ``None`` before it starts.

        Counted from the task's first step on the loop to the end of its last, so time
        spent waiting for the loop (in a burst of tasks, or in the queue) does not count.
        """
        started = self._started_at
        if started == 0.0:  # not `not ...`: compiled, that boxes the float
            return None
        ended = self._ended_at
        return (perf_counter() if ended == 0.0 else ended) - started

    def __repr__(self) -> str:
        duration = "" if self.duration is None else f" duration={self.duration * 1000:.1f}ms"
        return f"<TaskHandle id={self.id} name={self.name!r} state={self.state.value}{duration}>"

    def done(self) -> bool:
        """Tell whether the task has reached its terminal state."""
        return self.state is not PENDING and self.state is not RUNNING

    def result(self) -> T:
        """Return the task's result, or raise what ended it.

        Raises:
            asyncio.InvalidStateError: the task has not ended yet.
        """
        if self.state is COMPLETED:
            return cast("T", self._outcome)
        if not self.done():
            raise asyncio.InvalidStateError(
                f"task {self.name!r} has not ended (it is {self.state})"
            )
        raise cast("BaseException", self._outcome)

    def exception(self) -> BaseException | None:
        """Return what ended the task without a result, or ``None`` if it completed.

        Raises:
            asyncio.InvalidStateError: the task has not ended yet.
        """
        if not self.done():
            raise asyncio.InvalidStateError(
                f"task {self.name!r} has not ended (it is {self.state})"
            )
        return None if self.state is COMPLETED else cast("BaseException", self._outcome)

    def cancel(self) -> bool:
        """Cancel the task; return ``False`` if it had already ended.

        A running task is cancelled on the event loop and ends as ``cancelled`` once its
        coroutine has unwound; a pending one ends at once without starting.
        """
        return self._scheduler._cancel(self, "cancelled")

    def __await__(self) -> Generator[Any, None, T]:
        return outcome(None if self.done() else self._ended(), self.result).__await__()

    def _ended(self) -> asyncio.Future[None]:
        """The future that the task's end resolves, shared by all who await the task."""
        waiters = self._scheduler._waiters
        waiter = waiters.get(self)
        if waiter is None:
            waiter = waiters[self] = self._scheduler._loop_for_waiting().create_future()
        return waiter
