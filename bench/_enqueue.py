"""Part 4, one engine in a process of its own: ``python -m bench._enqueue SPEC``.

SPEC is a JSON object (``engine``, ``url``, ``n``, ``concurrency``, ``repeat``); the answer is
one JSON object on stdout. Each timed round enqueues *n* jobs, *concurrency* at a time (a
wave: that many at once, then wait until every one has been taken before the next), and ends
when the last one has been taken, in one of three ways: with the engine's own client as it
comes (no socket timeouts), with the engine's own client connected as lightwork's backend
connects it (socket and connect timeouts, one retry: what a careful app sets anyway), and
through ``scheduler.offload()``. No worker runs: this measures enqueueing. Before each round
the database is emptied, and after it the queue in Redis is checked to hold exactly *n* jobs,
so that a round that lost jobs cannot pass for a fast one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import redis

import lightwork
from lightwork import Offloader, Scheduler

from ._runtime import configure_logging, run_on

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import celery  # type: ignore[import-untyped]
    import saq

    from lightwork.backends import OffloadBackend
    from lightwork.backends.celery import CeleryBackend
    from lightwork.backends.saq import SaqBackend

JOB: Final = "bench-resize"
WARM_UP_JOBS: Final = 1_000
ROUND_TIMEOUT_S: Final = 300.0
LOOP: Final = "uvloop"
"""The loop production runs on, and the one the HTTP part serves on."""


@lightwork.offloadable(JOB)
def resize(path: str, width: int) -> str:
    """The job every round enqueues; no worker runs it."""
    return f"{path}@{width}"


def arguments(i: int) -> tuple[str, int]:
    """The *i*-th job's arguments: a small JSON payload, as a real job's reference would be."""
    return f"images/{i}.png", 200


Enqueue = Callable[[int], Awaitable[object]]
"""Enqueue the *i*-th job with the engine's own client."""


@dataclass(frozen=True, slots=True)
class Engine:
    """How to reach one engine: with its own client, and through lightwork's backend."""

    own: Callable[[str], AbstractAsyncContextManager[Enqueue]]
    """The engine's client with the engine's defaults."""
    configured: Callable[[str], AbstractAsyncContextManager[Enqueue]]
    """The engine's client, connected with the settings lightwork's backend uses."""
    backend: Callable[[str], OffloadBackend]
    queue_key: str
    """The Redis list that holds the enqueued jobs, to check each round's count."""


def _saq_enqueuer(queue: saq.Queue) -> Enqueue:
    def enqueue(i: int) -> Awaitable[object]:
        path, width = arguments(i)
        return queue.enqueue(JOB, path=path, width=width)

    return enqueue


@asynccontextmanager
async def _saq_client(url: str) -> AsyncIterator[Enqueue]:
    import saq  # noqa: PLC0415 -- an optional engine: imported only when measured

    queue = saq.Queue.from_url(url)
    await queue.connect()
    try:
        yield _saq_enqueuer(queue)
    finally:
        await queue.disconnect()


@asynccontextmanager
async def _saq_configured(url: str) -> AsyncIterator[Enqueue]:
    backend = _saq_backend(url)
    queue = backend._connected()  # the SAQ queue itself, on lightwork's Redis client
    await queue.connect()
    try:
        yield _saq_enqueuer(queue)
    finally:
        await backend.aclose()


def _saq_backend(url: str) -> SaqBackend:
    from lightwork.backends.saq import SaqBackend  # noqa: PLC0415 -- an optional engine

    return SaqBackend(url)


@asynccontextmanager
async def _celery_enqueuer(app: celery.Celery) -> AsyncIterator[Enqueue]:
    # Celery's client blocks and is not thread-safe: an async app calls it on one thread of
    # its own, as lightwork's CeleryBackend does.
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-celery")
    loop = asyncio.get_running_loop()

    def enqueue(i: int) -> Awaitable[object]:
        return loop.run_in_executor(thread, partial(app.send_task, JOB, args=list(arguments(i))))

    try:
        yield enqueue
    finally:
        await loop.run_in_executor(thread, app.close)
        thread.shutdown()


@asynccontextmanager
async def _celery_client(url: str) -> AsyncIterator[Enqueue]:
    import celery  # noqa: PLC0415 -- an optional engine: imported only when measured

    app = celery.Celery("bench-client", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
    )
    async with _celery_enqueuer(app) as enqueue:
        yield enqueue


@asynccontextmanager
async def _celery_configured(url: str) -> AsyncIterator[Enqueue]:
    async with _celery_enqueuer(_celery_backend(url).app) as enqueue:  # lightwork's Celery app
        yield enqueue


def _celery_backend(url: str) -> CeleryBackend:
    from lightwork.backends.celery import CeleryBackend  # noqa: PLC0415 -- an optional engine

    return CeleryBackend(url)


ENGINES: Final = {
    "saq": Engine(_saq_client, _saq_configured, _saq_backend, "saq:default:queued"),
    "celery": Engine(_celery_client, _celery_configured, _celery_backend, "celery"),
}


def _waves(n: int, concurrency: int) -> list[range]:
    return [range(first, min(first + concurrency, n)) for first in range(0, n, concurrency)]


async def own_round(enqueue: Enqueue, n: int, concurrency: int) -> float:
    """Enqueue *n* jobs with the engine's own client; return jobs per second."""
    start = time.perf_counter()
    for wave in _waves(n, concurrency):
        await asyncio.gather(*(enqueue(i) for i in wave))
    return n / (time.perf_counter() - start)


async def lightwork_round(scheduler: Scheduler, n: int, concurrency: int) -> float:
    """Offload *n* jobs through the scheduler; return jobs per second, once all were taken."""
    start = time.perf_counter()
    for wave in _waves(n, concurrency):
        for i in wave:
            scheduler.offload(resize, *arguments(i))
        # Awaited in turn: cheaper than a TaskRecorder, whose observer every task would pay,
        # and than gather(), which wraps each in a task of its own.
        async with asyncio.timeout(ROUND_TIMEOUT_S):
            for hand_off in scheduler.running_tasks():
                await hand_off
    return n / (time.perf_counter() - start)


class _Queue:
    """The engine's queue in Redis, emptied before each round and counted after it."""

    def __init__(self, url: str, key: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._key = key

    def empty(self) -> None:
        self._client.flushdb()

    def check(self, n: int, who: str) -> None:
        held = self._client.llen(self._key)
        if held != n:
            raise RuntimeError(f"{who}: {n} jobs enqueued, but Redis holds {held} in {self._key}")

    def close(self) -> None:
        self._client.close()


async def measure(
    engine: Engine, url: str, n: int, concurrency: int, repeat: int
) -> dict[str, list[float]]:
    """Time *repeat* triples of rounds: the engine's own client twice, then lightwork.

    A ratio taken within a triple stays true when a shared machine slows down for a while.
    """
    samples: dict[str, list[float]] = {
        "own_defaults_jobs_per_s": [], "own_jobs_per_s": [], "lightwork_jobs_per_s": [],
    }  # fmt: skip
    queue = _Queue(url, engine.queue_key)
    offloader = Offloader(engine.backend(url), outbox=None)
    warm_up = min(n, WARM_UP_JOBS)
    try:
        async with (
            engine.own(url) as own,
            engine.configured(url) as configured,
            Scheduler(offload=offloader) as scheduler,
        ):
            rounds: dict[str, Callable[[int], Awaitable[float]]] = {
                "own_defaults_jobs_per_s": lambda size: own_round(own, size, concurrency),
                "own_jobs_per_s": lambda size: own_round(configured, size, concurrency),
                "lightwork_jobs_per_s": lambda size: lightwork_round(scheduler, size, concurrency),
            }
            for size, timed in [(warm_up, False), *[(n, True)] * repeat]:
                for key, round_ in rounds.items():
                    queue.empty()
                    rate = await round_(size)
                    queue.check(size, key)
                    if timed:
                        samples[key].append(rate)
    finally:
        queue.close()
    if (enqueued := offloader.counts()["enqueued"]) != warm_up + n * repeat:
        raise RuntimeError(
            f"lightwork handed {enqueued} jobs to the engine, not {warm_up + n * repeat}"
        )
    return samples


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        engine = ENGINES[spec["engine"]]
        return await measure(engine, spec["url"], spec["n"], spec["concurrency"], spec["repeat"])
    except ImportError as exc:  # the engine's client is not installed
        return {"skipped": f"{spec['engine']}: {exc}"}


def main() -> None:
    spec = json.loads(sys.argv[1])
    configure_logging()
    print(json.dumps(run_on(LOOP, _measure(spec))))


if __name__ == "__main__":
    main()
