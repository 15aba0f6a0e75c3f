"""The ways to run background work that the micro and memory parts compare, each in one shape.

A contender is an async context manager (set up once per process, as an app would) that
yields a *round*: spawn tasks of a workload in the waves that ``waves`` yields (the loop runs
once between two waves, as it does between two batches of requests), call ``between()``
once all are spawned (the memory part measures there), then return when every task has
completed. The floor is
a bare ``loop.create_task`` kept alive by a reference set, the pattern asyncio's docs give.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiojobs
import anyio
from starlette.background import BackgroundTasks

import lightwork

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager

TaskFn = Callable[[], Coroutine[Any, Any, None]]
Hook = Callable[[], Awaitable[None]]
Round = Callable[[AsyncIterable[int], TaskFn, Hook], Awaitable[None]]

BLOCK_OPTION: Final = "block_threshold"
"""The ``Scheduler`` option that turns loop-block detection on (issue 4), once it exists."""
BLOCK_THRESHOLD_S: Final = 0.02
STEPS_OPTION: Final = "time_steps"
"""The option that times every step instead of sampling the loop (issue 15), once it exists."""
CALLBACK_TIMEOUT_S: Final = 30.0
CLOCK_STRETCH: Final = float(os.environ.get("BENCH_CLOCK_STRETCH", "1"))
"""How many times slower than real time this process runs: ``bench.instructions`` sets it
for callgrind. lightwork's watchdog beats on the clock, so its threshold is stretched as
much, for its beats to come as often per task as they would at full speed."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One way to run background work: a label for tables, and how to open it."""

    key: str
    label: str
    open: Callable[[], AbstractAsyncContextManager[Round]]
    is_lightwork: bool = False


class UnavailableError(Exception):
    """Raised when opening a contender whose feature does not exist yet; says why."""


async def waves(n: int, size: int) -> AsyncIterator[int]:
    """Yield how many tasks to spawn next, *n* in all, letting the loop run between waves."""
    spawned = 0
    while spawned < n:
        count = min(size, n - spawned)
        yield count
        spawned += count
        if spawned < n:
            await asyncio.sleep(0)


async def until_empty(pending: Callable[[], int]) -> None:
    """Yield to the loop, one iteration at a time, until no task is left."""
    # One iteration is exactly what each contender needs to finish its tasks: an event set by
    # the last task would add a cost of its own to the contender being measured.
    while pending():  # noqa: ASYNC110
        await asyncio.sleep(0)


def _ignore(_outcome: object) -> None:
    """A callback that does nothing, to measure what calling callbacks costs."""


@asynccontextmanager
async def _floor() -> AsyncIterator[Round]:
    async def round_(plan: AsyncIterable[int], fn: TaskFn, between: Hook) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        async for count in plan:
            for _ in range(count):
                task = loop.create_task(fn())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await between()
        await until_empty(tasks.__len__)

    yield round_


@asynccontextmanager
async def _task_group() -> AsyncIterator[Round]:
    async def round_(plan: AsyncIterable[int], fn: TaskFn, between: Hook) -> None:
        async with asyncio.TaskGroup() as group:
            async for count in plan:
                for _ in range(count):
                    group.create_task(fn())
            await between()

    yield round_


@asynccontextmanager
async def _anyio_task_group() -> AsyncIterator[Round]:
    async def round_(plan: AsyncIterable[int], fn: TaskFn, between: Hook) -> None:
        async with anyio.create_task_group() as group:
            async for count in plan:
                for _ in range(count):
                    group.start_soon(fn)
            await between()

    yield round_


@asynccontextmanager
async def _aiojobs() -> AsyncIterator[Round]:
    # No limit: every contender runs all its tasks at once (aiojobs defaults to 100).
    scheduler = aiojobs.Scheduler(limit=None, pending_limit=0)

    async def round_(plan: AsyncIterable[int], fn: TaskFn, between: Hook) -> None:
        async for count in plan:
            for _ in range(count):
                await scheduler.spawn(fn())
        await between()
        await until_empty(lambda: scheduler.active_count)

    try:
        yield round_
    finally:
        await scheduler.close()


@asynccontextmanager
async def _starlette() -> AsyncIterator[Round]:
    # Starlette runs a response's tasks one after another in the response's own coroutine,
    # once the body is sent: nothing is spawned, so this measures adding and awaiting.
    async def round_(plan: AsyncIterable[int], fn: TaskFn, between: Hook) -> None:
        tasks = BackgroundTasks()
        async for count in plan:
            for _ in range(count):
                tasks.add_task(fn)
        await between()
        await tasks()

    yield round_


def _lightwork(
    *,
    with_options: bool = False,
    define: bool = False,
    scheduler_options: dict[str, Any] | None = None,
) -> Callable[[], AbstractAsyncContextManager[Round]]:
    @asynccontextmanager
    async def open_() -> AsyncIterator[Round]:
        options = _stretched(scheduler_options or {})
        async with lightwork.Scheduler(**options) as scheduler:

            async def round_(plan: AsyncIterable[int], fn: TaskFn, between: Hook) -> None:
                if define:
                    # On the workload's function itself (a bound method's too): harmless, as
                    # each contender runs in a process of its own.
                    lightwork.task(
                        timeout=CALLBACK_TIMEOUT_S, on_complete=_ignore, on_error=_ignore
                    )(getattr(fn, "__func__", fn))
                if with_options:
                    async for count in plan:
                        for _ in range(count):
                            scheduler.add_task(
                                fn(),
                                timeout=CALLBACK_TIMEOUT_S,
                                on_complete=_ignore,
                                on_error=_ignore,
                            )
                else:
                    async for count in plan:
                        for _ in range(count):
                            scheduler.add_task(fn)
                await between()
                await until_empty(lambda: scheduler.running)

            yield round_

    return open_


def _has_option(option: str) -> bool:
    return option in inspect.signature(lightwork.Scheduler).parameters


def _stretched(options: dict[str, Any]) -> dict[str, Any]:
    """*options*, with the watchdog's sampling threshold stretched by ``CLOCK_STRETCH``."""
    threshold = options.get(BLOCK_OPTION, BLOCK_THRESHOLD_S)
    sampling = _has_option(STEPS_OPTION) and not options.get(STEPS_OPTION)
    if CLOCK_STRETCH == 1 or threshold is None or not sampling:
        return options
    return {**options, BLOCK_OPTION: threshold * CLOCK_STRETCH}


def _block_option(value: float | None) -> dict[str, Any]:
    """Scheduler options that set loop-block detection, on versions of lightwork that have it."""
    return {BLOCK_OPTION: value} if _has_option(BLOCK_OPTION) else {}


def _with_options(
    options: dict[str, Any], issue: str
) -> Callable[[], AbstractAsyncContextManager[Round]]:
    """lightwork with timeout+callbacks and scheduler *options*, skipped on versions without."""
    opened = _lightwork(with_options=True, scheduler_options=options)

    @asynccontextmanager
    async def open_() -> AsyncIterator[Round]:
        missing = [option for option in options if not _has_option(option)]
        if missing:
            raise UnavailableError(
                f"lightwork.Scheduler has no {missing[0]!r} option yet ({issue}): skipped"
            )
        async with opened() as round_:
            yield round_

    return open_


FLOOR: Final = Contender("floor", "create_task + set (floor)", _floor)
CONTENDERS: Final = (
    FLOOR,
    Contender("taskgroup", "asyncio.TaskGroup", _task_group),
    Contender("anyio", "anyio task group", _anyio_task_group),
    Contender("aiojobs", "aiojobs.Scheduler", _aiojobs),
    Contender("starlette", "Starlette BackgroundTasks", _starlette),
    Contender("lightwork", "lightwork add_task(fn) defaults", _lightwork(), is_lightwork=True),
    Contender(
        "lightwork_options",
        "lightwork timeout+callbacks",
        _lightwork(with_options=True, scheduler_options=_block_option(None)),
        is_lightwork=True,
    ),
    Contender(
        "lightwork_defined",
        "lightwork @task timeout+callbacks",
        _lightwork(define=True, scheduler_options=_block_option(None)),
        is_lightwork=True,
    ),
    Contender(
        "lightwork_block",
        "lightwork timeout+callbacks+blocking",
        _with_options({BLOCK_OPTION: BLOCK_THRESHOLD_S}, "issue 4"),
        is_lightwork=True,
    ),
    Contender(
        "lightwork_steps",
        "lightwork timeout+callbacks+timed steps",
        _with_options({STEPS_OPTION: True}, "issue 15"),
        is_lightwork=True,
    ),
)
BY_KEY: Final = {contender.key: contender for contender in CONTENDERS}
