"""A loop on a machine with no CPU to spare for it, run by ``tests/core/test_watchdog.py``.

Run as ``python -m tests.starved_loop`` from the project, in a process of its own (its loop
thread's priority can only go down): the loop's thread is pinned to one CPU at the lowest
priority, beside a process that spins there at normal priority, while the watchdog's thread
runs on the other CPUs. ``polite`` computes 5 ms at a time, under the 20 ms threshold,
between awaits. Then the spinning stops and ``rude`` sleeps 150 ms without awaiting: a hold
of its own, which the same watchdog must still charge. Prints, as JSON, what each was
charged, the events logged, and how long the loop's thread waited for a CPU while ``polite``
ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import structlog
from structlog.testing import LogCapture

from lightwork import Scheduler
from tests.support import spin

SPIN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def cpu_wait() -> float:
    """Seconds this thread has waited for a CPU, from the kernel's schedstat."""
    with open("/proc/thread-self/schedstat", encoding="ascii") as file:
        return int(file.read().split()[1]) / 1e9


async def polite() -> None:
    for _ in range(5):
        spin(0.005)
        await asyncio.sleep(0.001)


async def rude() -> None:
    time.sleep(0.15)  # noqa: ASYNC251 -- the blocking call under test


async def main(cpu: int, spinner: subprocess.Popen[bytes]) -> dict[str, Any]:
    capture = LogCapture()
    structlog.configure(processors=[capture])
    async with Scheduler(watchdog=0.05) as scheduler:  # block_threshold: 20 ms
        os.sched_setaffinity(0, {cpu})  # this thread only: the watchdog's runs anywhere
        os.nice(19)
        before = cpu_wait()
        polite_handle = scheduler.add_task(polite())
        await polite_handle
        waited = cpu_wait() - before
        spinner.kill()
        spinner.wait()
        await asyncio.sleep(0.05)  # the loop beats again: rude's stall is rude's alone
        rude_handle = scheduler.add_task(rude())
        await rude_handle
    return {
        "waited": waited,
        "blocked": {"polite": polite_handle.blocked, "rude": rude_handle.blocked},
        "events": [
            {key: value for key, value in entry.items() if key != "stack"}
            for entry in capture.entries
            if entry["event"] in ("background_task_blocking", "event_loop_blocked")
        ],
    }


if __name__ == "__main__":
    cpu = min(os.sched_getaffinity(0))
    spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(cpu)])
    try:
        print(json.dumps(asyncio.run(main(cpu, spinner))))
    finally:
        spinner.kill()
        spinner.wait()
