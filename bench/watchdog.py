"""The sampling watchdog: what it costs the event loop, and how well it finds blocking tasks.

Run ``python -m bench.watchdog`` (about half a minute; ``--quick`` for a smoke run). Not part
of ``python -m bench``. Two parts, on uvloop:

- *Cost.* The same burst of no-op tasks (timeout and callbacks, 20 a wave) with no loop-block
  detection (the anchor), with the default sampling watchdog, and with every step timed
  (``time_steps=True``): tasks per second and the ratio to the anchor, and how often the
  watchdog's thread gave up the CPU of its own accord (the kernel's count of its voluntary
  context switches): each time it sleeps until its next look, and each time it waits for the
  GIL that the loop's thread holds, that is, each hand-off of the GIL between the two.
- *Detection.* Tasks that hold the loop computing for 30 ms, 100 ms and 1 s, one at a time
  among tasks that only wait: the share of them reported (``background_task_blocking``) at
  the default 20 ms threshold, and how far the measured time was from the real one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from pathlib import Path
from typing import Any, Final

import lightwork

from ._contenders import CALLBACK_TIMEOUT_S, _ignore, until_empty
from ._runtime import configure_logging, run_on
from ._worker import yield_once

WAVE: Final = 20
ROUNDS: Final = 9
HOLDS_S: Final = (0.03, 0.1, 1.0)


def _voluntary_switches(native_id: int | None) -> int:
    """The kernel's count of times a thread of this process went to sleep of its own accord."""
    if native_id is None:
        return 0
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


async def _tasks_per_second(options: dict[str, Any], n: int) -> tuple[float, float]:
    """Run *n* tasks through a scheduler with *options*; return tasks/s, the thread's switches/s."""
    async with lightwork.Scheduler(**options) as scheduler:
        thread = scheduler.watchdog._thread if scheduler.watchdog is not None else None
        native_id = thread.native_id if thread is not None else None
        switches = _voluntary_switches(native_id)
        start = time.perf_counter()
        for first in range(0, n, WAVE):
            for _ in range(min(WAVE, n - first)):
                scheduler.add_task(
                    yield_once(), timeout=CALLBACK_TIMEOUT_S, on_complete=_ignore, on_error=_ignore
                )
            await asyncio.sleep(0)
        await until_empty(lambda: scheduler.running)
        elapsed = time.perf_counter() - start
        switched = _voluntary_switches(native_id) - switches
    return n / elapsed, switched / elapsed


def _spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


async def _detection(hold_s: float, trials: int) -> tuple[int, list[float]]:
    """Block the loop for *hold_s* in *trials* tasks; return how many were charged, and errors."""
    charged, errors = 0, []
    async with lightwork.Scheduler() as scheduler:
        for _ in range(trials):
            waiting = [scheduler.add_task(asyncio.sleep(0.01)) for _ in range(5)]

            async def holds() -> None:
                _spin(hold_s)

            handle = scheduler.add_task(holds())
            await handle
            for other in waiting:
                await other
            if handle.longest_step:
                charged += 1
                errors.append(handle.longest_step - hold_s)
            await asyncio.sleep(0.01)  # a few beats between two trials
    return charged, errors


async def _run(n: int, trials: int) -> None:
    variants: list[tuple[str, dict[str, Any]]] = [
        ("no loop-block detection", {"block_threshold": None}),
        ("sampling watchdog (default)", {}),
        ("every step timed", {"time_steps": True}),
    ]
    await _tasks_per_second({}, n // 10)  # warm-up: imports, caches, the first thread
    # Interleaved rounds, so that a noisy moment of the machine falls on every variant.
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in variants}
    for _ in range(ROUNDS):
        for label, options in variants:
            runs[label].append(await _tasks_per_second(options, n))
    print(f"cost: {n:,} no-op tasks with timeout+callbacks, {WAVE} a wave, uvloop, median of")
    print(f"{ROUNDS} interleaved rounds")
    anchor = 0.0
    for label, _ in variants:
        rate = statistics.median(r for r, _ in runs[label])
        switches = statistics.median(w for _, w in runs[label])
        anchor = anchor or rate
        print(
            f"  {label:<30}{rate:>11,.0f} tasks/s {rate / anchor:5.2f}x"
            f"  watchdog thread: {switches:>5,.0f} switches/s"
        )
    print(f"detection at block_threshold=0.02, {trials} tries each (1 s: {max(trials // 4, 1)})")
    for hold_s in HOLDS_S:
        tries = trials if hold_s < 1 else max(trials // 4, 1)
        charged, errors = await _detection(hold_s, tries)
        mean = statistics.mean(errors) * 1000 if errors else float("nan")
        worst = max((abs(e) for e in errors), default=float("nan")) * 1000
        print(
            f"  holds the loop {hold_s * 1000:>5.0f} ms: reported {charged}/{tries}, "
            f"measured {mean:+.1f} ms off on average, {worst:.1f} ms at worst"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to prove it runs")
    args = parser.parse_args()
    configure_logging(logging.ERROR)  # the warnings of the detection part are expected
    run_on("uvloop", _run(n=2_000 if args.quick else 100_000, trials=2 if args.quick else 20))


if __name__ == "__main__":
    main()
