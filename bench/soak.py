"""Soak: push a million tasks through one Scheduler and show that its memory stays flat.

Run ``python -m bench.soak`` (about a minute or two; ``--tasks 100000`` for a quick run). Not
part of ``python -m bench`` or of CI's default run.

Tasks go in batches (a batch is added at once, then awaited, which bounds how many are
alive), through a concurrency limit so that most of each batch waits in the queue. They
complete, fail, time out, are cancelled, call callbacks, and run in a context of their own
with structlog values bound, as tasks added by requests do. Every ``--every`` tasks the
script collects garbage and samples the memory that tracemalloc traces, the resident set,
and how many lightwork and asyncio objects are alive. Flat means: no handle, step timer,
task or context outlives its batch, and traced memory after the first sample stops growing.
Every terminal log event is counted too: each task must be logged as ended exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import gc
import logging
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

from lightwork import Scheduler, TaskHandle
from lightwork._core._handle import TERMINAL_STATES
from lightwork._core._monitor import TimedCoroutine

from ._runtime import LOOPS, run_on
from ._worker import _rss_bytes as rss_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from structlog.typing import EventDict, WrappedLogger

TRACKED: Final = {
    "TaskHandle": TaskHandle,
    "TimedCoroutine": TimedCoroutine,
    "asyncio.Task": asyncio.Task,
    "Context": contextvars.Context,
}
"""The objects every task makes; none may outlive its batch."""

TIMEOUT_S: Final = 0.001
CONTEXT_SLACK: Final = 2
"""Contexts that may outlive their batch: ``loop.call_later`` keeps the context it was called
in, so the deadline timer (and a cancelled one, until due) holds the context of the task that
armed it."""
GROWTH_LIMIT_BYTES: Final = 512 * 1024
"""Traced memory may move this much between the first sample and the last (allocator noise)."""

request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")


class SoakError(Exception):
    """What the failing tasks raise."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Memory and live objects after a number of tasks, garbage collected first."""

    tasks: int
    seconds: float
    traced_bytes: int | None
    rss_bytes: int | None
    cycles_freed: int
    timer_buckets: int
    """Deadline buckets the scheduler holds (private, peeked at)."""
    timer_bucket_bytes: int
    """What those buckets take: each set keeps the table it grew to, even once emptied."""
    objects: dict[str, int]


class EndCounter:
    """A structlog processor that counts the terminal events, per state, then drops them."""

    def __init__(self) -> None:
        self.states: Counter[str] = Counter()
        self.repeats = 0
        """Terminal events for a task id already seen in the same batch: must stay 0."""
        self._ended: set[int] = set()

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        state = _TERMINAL_EVENTS.get(event_dict["event"])
        if state is not None:
            task_id = event_dict["task_id"]
            if task_id in self._ended:
                self.repeats += 1
            self._ended.add(task_id)
            self.states[state] += 1
        raise structlog.DropEvent

    def next_batch(self) -> None:
        """Forget the batch's task ids: every task of a batch has ended when it is awaited."""
        self._ended.clear()


_TERMINAL_EVENTS: Final = {f"background_task_{s.value}": s.value for s in TERMINAL_STATES}


async def quick(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def fail(i: int) -> None:
    await asyncio.sleep(0)
    raise SoakError(i)


async def endless() -> None:
    await asyncio.Event().wait()


async def on_done(value: object) -> None:
    await asyncio.sleep(0)


def add_one(scheduler: Scheduler, i: int) -> TaskHandle[Any]:
    """Add task number *i*: mostly quick ones, with every other kind of end mixed in."""
    kind = i % 100
    if kind < 88:
        return scheduler.add_task(quick, i)
    if kind < 94:
        return scheduler.add_task(fail(i), name="fail")
    if kind < 96:
        return scheduler.add_task(endless(), name="timeout", timeout=TIMEOUT_S)
    if kind < 98:
        handle = scheduler.add_task(endless(), name="cancelled")
        handle.cancel()
        return handle
    return scheduler.add_task(quick(i), name="callback", on_complete=on_done, on_error=on_done)


def add_batch(scheduler: Scheduler, first: int, size: int) -> list[TaskHandle[Any]]:
    """Add a batch in a context of its own, as a request would."""
    request_id.set(first)
    structlog.contextvars.bind_contextvars(request_id=first)
    return [add_one(scheduler, i) for i in range(first, first + size)]


async def run_batch(scheduler: Scheduler, first: int, size: int) -> None:
    """Add a batch, await every task's end, then its async callbacks' (peeking inside)."""
    for handle in contextvars.copy_context().run(add_batch, scheduler, first, size):
        with contextlib.suppress(Exception):  # every kind of end is expected here
            await handle
    while scheduler._callbacks:
        await asyncio.wait(scheduler._callbacks)


def live_objects() -> dict[str, int]:
    counts = dict.fromkeys(TRACKED, 0)
    for obj in gc.get_objects():
        for label, kind in TRACKED.items():
            if isinstance(obj, kind):
                counts[label] += 1
    return counts


def bucket_bytes(scheduler: Scheduler) -> int:
    deadlines = scheduler._deadlines
    buckets = deadlines._buckets
    keys = sys.getsizeof(deadlines._keys) + sum(map(sys.getsizeof, deadlines._keys))
    return sys.getsizeof(buckets) + sum(map(sys.getsizeof, buckets.values())) + keys


def sample(scheduler: Scheduler, tasks: int, started: float) -> Sample:
    cycles = gc.collect()
    return Sample(
        tasks=tasks,
        seconds=time.perf_counter() - started,
        traced_bytes=tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        rss_bytes=rss_bytes(),
        cycles_freed=cycles,
        timer_buckets=len(scheduler._deadlines._buckets),
        timer_bucket_bytes=bucket_bytes(scheduler),
        objects=live_objects(),
    )


@dataclass(frozen=True, slots=True)
class SoakResult:
    samples: list[Sample]
    baseline: dict[str, int]
    """Live objects of each tracked kind before the first task: the loop's and the script's."""
    counts: dict[str, int]
    """The scheduler's counts once closed."""


async def soak(args: argparse.Namespace) -> SoakResult:
    scheduler = Scheduler(
        timeout=args.timeout,
        slow_threshold=None,
        block_threshold=None,
        max_concurrency=args.max_concurrency,
    )
    async with scheduler:
        baseline = live_objects()
        started = time.perf_counter()
        samples = [sample(scheduler, 0, started)]
        done = 0
        while done < args.tasks:
            size = min(args.batch, args.tasks - done)
            await run_batch(scheduler, done, size)
            done += size
            ENDS.next_batch()
            if done % args.every == 0 or done == args.tasks:
                samples.append(sample(scheduler, done, started))
    return SoakResult(samples, baseline, scheduler.counts())


ENDS: Final = EndCounter()


def table(result: SoakResult) -> str:
    header = ["tasks", "seconds", "traced MiB", "RSS MiB", "cycles freed", "timer buckets", "MiB"]
    rows = [[*header, *TRACKED]]
    for s in result.samples:
        rows.append(
            [
                f"{s.tasks:,}",
                f"{s.seconds:.1f}",
                "-" if s.traced_bytes is None else f"{s.traced_bytes / 2**20:.2f}",
                "-" if s.rss_bytes is None else f"{s.rss_bytes / 2**20:.1f}",
                f"{s.cycles_freed:,}",
                f"{s.timer_buckets:,}",
                f"{s.timer_bucket_bytes / 2**20:.2f}",
                *(f"{s.objects[k] - result.baseline[k]:+d}" for k in TRACKED),
            ]
        )
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    lines = ("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(lines)


def verdicts(result: SoakResult, args: argparse.Namespace) -> list[tuple[bool | None, str]]:
    """Return each check, passed, failed or not judged (``None``), with what it saw."""
    beyond = {k: [s.objects[k] - result.baseline[k] for s in result.samples] for k in TRACKED}
    most = ", ".join(f"{k} {max(n):+d}" for k, n in beyond.items())
    checks: list[tuple[bool | None, str]] = [
        (
            not any(beyond["TaskHandle"] + beyond["TimedCoroutine"] + beyond["asyncio.Task"]),
            f"no handle, step timer or asyncio task outlives its batch (most beyond the start: "
            f"{most})",
        ),
        (
            max(beyond["Context"]) <= CONTEXT_SLACK,
            f"at most {CONTEXT_SLACK} task contexts outlive their batch: those that the "
            "deadline timer's loop handles captured, held until due",
        ),
    ]
    # Deadlines keep a bucket per 5 ms of the timeout ahead, emptied as tasks end but freed
    # only when due: they fill for one timeout, then hold. Judge the rest, after that window.
    settled = [s for s in result.samples if s.seconds > args.timeout + 1]
    rest = [s.traced_bytes - s.timer_bucket_bytes for s in settled if s.traced_bytes is not None]
    if len(rest) < 2:
        window = f"the {args.timeout:g} s timeout window (try --timeout 1)"
        checks.append((None, f"flat traced memory: not judged, no two samples after {window}"))
    else:
        growth = rest[-1] - rest[0]
        checks.append(
            (
                growth < GROWTH_LIMIT_BYTES,
                f"flat traced memory, but for the timer buckets, from {settled[0].tasks:,} to "
                f"{settled[-1].tasks:,} tasks: {growth / 1024:+,.0f} KiB "
                f"(limit {GROWTH_LIMIT_BYTES // 1024:,} KiB)",
            )
        )
    last = result.samples[-1]
    checks.append(
        (
            None,
            f"the timer buckets held {last.timer_bucket_bytes / 2**20:.1f} MiB at the end "
            f"({last.timer_buckets:,} buckets, bounded by the timeout over 5 ms)",
        )
    )
    counts = result.counts
    ended = {state.value: counts[state.value] for state in TERMINAL_STATES}
    checks.append(
        (
            counts["added"] == args.tasks == sum(ended.values()) and counts["running"] == 0,
            f"scheduler counts add up: added {counts['added']:,}, running {counts['running']}, "
            f"ended {sum(ended.values()):,}",
        )
    )
    checks.append(
        (
            dict(ENDS.states) == {k: n for k, n in ended.items() if n} and ENDS.repeats == 0,
            f"each task logged as ended once: {dict(ENDS.states)}, repeats {ENDS.repeats}",
        )
    )
    return checks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in all (1,000,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="tasks alive at once (1,000)")
    parser.add_argument("--every", type=int, help="tasks between samples (a tenth of --tasks)")
    parser.add_argument(
        "--max-concurrency", type=int, default=100, help="running at once; the rest queue (100)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="the scheduler's default timeout (30 s)"
    )
    parser.add_argument("--loop", choices=list(LOOPS), default="uvloop")
    parser.add_argument(
        "--no-tracemalloc", dest="tracemalloc", action="store_false",
        help="skip tracemalloc (about twice as fast; RSS only)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.every is None:
        args.every = max(args.tasks // 10 // args.batch * args.batch, args.batch)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, ENDS],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    if args.tracemalloc:
        tracemalloc.start()
    print(
        f"soak: {args.tasks:,} tasks in batches of {args.batch:,}, at most "
        f"{args.max_concurrency:,} running (the rest queued), timeout {args.timeout:g} s, "
        f"on {args.loop}"
    )
    result = run_on(args.loop, soak(args))
    print(table(result))
    print("(last columns: live objects beyond those alive before the first task)")
    failed = False
    for passed, text in verdicts(result, args):
        print({True: "ok  ", False: "FAIL", None: "note"}[passed], text)
        failed |= passed is False
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
