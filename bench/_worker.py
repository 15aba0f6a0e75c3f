"""One measurement of one contender, in a process of its own: ``python -m bench._worker SPEC``.

SPEC is a JSON object (``part``, ``contender``, ``loop``, and the part's sizes); the answer
is one JSON object on stdout. A fresh process per measurement keeps one contender's garbage,
caches and allocator state out of the next one's figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import time
import tracemalloc
from typing import TYPE_CHECKING, Any, Final

from ._contenders import BY_KEY, FLOOR, Contender, UnavailableError, waves
from ._runtime import configure_logging, run_on

if TYPE_CHECKING:
    from ._contenders import Hook, Round, TaskFn

WARM_UP_TASKS: Final = 1_000
"""Tasks run before measuring memory: enough to import and cache lazily made objects."""


async def noop() -> None:
    """A task that does nothing: the pure cost of spawning and completing."""


async def yield_once() -> None:
    """A task that gives the loop back once, as any task doing I/O does."""
    await asyncio.sleep(0)


WORKLOADS: Final[dict[str, TaskFn]] = {"noop": noop, "sleep0": yield_once}


async def _nothing() -> None:
    pass


async def _settle() -> None:
    """Let every spawned task run to its first ``await``."""
    for _ in range(3):
        await asyncio.sleep(0)


async def _timed(round_: Round, fn: TaskFn, n: int, wave: int) -> float:
    """Run one round of *n* tasks after a full collection; return ns per task."""
    gc.collect()
    start = time.perf_counter_ns()
    await round_(waves(n, wave), fn, _nothing)
    return (time.perf_counter_ns() - start) / n


async def micro(
    contender: Contender, workload: str, n: int, wave: int, repeat: int
) -> dict[str, Any]:
    """Time *repeat* rounds of *n* tasks after a warm-up, each paired with a round of the floor.

    The floor runs just before each round of the contender, in the same process: a ratio
    taken within a pair stays true when a shared machine slows down for a while.
    """
    fn = WORKLOADS[workload]
    samples: list[float] = []
    floor_samples: list[float] = []
    async with FLOOR.open() as floor, contender.open() as round_:
        paired = contender is not FLOOR
        await _timed(floor, fn, n, wave)
        if paired:
            await _timed(round_, fn, n, wave)
        for _ in range(repeat):
            floor_samples.append(await _timed(floor, fn, n, wave))
            if paired:
                samples.append(await _timed(round_, fn, n, wave))
    return {"ns_per_task": samples or floor_samples, "floor_ns_per_task": floor_samples}


class _Gate:
    """One future that every task of a round parks on, until the measurement is taken."""

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def parked(self) -> None:
        await self.future


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


async def memory(contender: Contender, n: int) -> dict[str, Any]:
    """Measure bytes per parked task (by RSS growth, then by tracemalloc) and tracked objects."""
    result: dict[str, Any] = {}

    async def measured_round(round_: Round, count: int, measure: Hook) -> None:
        gate = _Gate()

        async def between() -> None:
            await _settle()
            await measure()
            gate.future.set_result(None)

        await round_(waves(count, count), gate.parked, between)

    async with contender.open() as round_:
        await measured_round(round_, WARM_UP_TASKS, _nothing)
        gc.collect()
        rss_before = _rss_bytes()
        tracked_before = len(gc.get_objects())

        async def by_rss() -> None:
            rss_after = _rss_bytes()
            if rss_before is not None and rss_after is not None:
                result["rss_bytes_per_task"] = (rss_after - rss_before) / n
            # What the collector walks for each parked task: after the RSS, as the list grows it.
            result["tracked_per_task"] = (len(gc.get_objects()) - tracked_before) / n

        await measured_round(round_, n, by_rss)
        gc.collect()
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]

        async def by_tracemalloc() -> None:
            result["bytes_per_task"] = (tracemalloc.get_traced_memory()[0] - traced_before) / n

        await measured_round(round_, n, by_tracemalloc)
        tracemalloc.stop()
    return result


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    contender = BY_KEY[spec["contender"]]
    try:
        if spec["part"] == "micro":
            return await micro(contender, spec["workload"], spec["n"], spec["wave"], spec["repeat"])
        return await memory(contender, spec["n"])
    except UnavailableError as exc:
        return {"skipped": str(exc)}


def main() -> None:
    spec = json.loads(sys.argv[1])
    # The memory part parks its tasks past the 100 ms slow-task threshold: printing one
    # warning per task would take longer than the tasks' 30 s timeout on a slow machine, and
    # leaves nothing behind in memory to measure.
    configure_logging(logging.ERROR if spec["part"] == "memory" else logging.INFO)
    print(json.dumps(run_on(spec["loop"], _measure(spec))))


if __name__ == "__main__":
    main()
