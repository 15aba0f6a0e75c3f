"""Helpers for the offload tests: loop-lag measurement and process checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TICK_S = 0.005


@dataclass
class LoopLag:
    """The worst delay, in seconds, with which the event loop woke a short periodic timer."""

    worst: float = 0.0
    ticks: int = 0


@contextlib.asynccontextmanager
async def measure_loop_lag() -> AsyncIterator[LoopLag]:
    """Tick every 5 ms in the background and record how late each tick came."""
    loop = asyncio.get_running_loop()
    lag = LoopLag()

    async def tick() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            lag.worst = max(lag.worst, loop.time() - before - TICK_S)
            lag.ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        yield lag
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


def process_exists(pid: int) -> bool:
    """Tell whether a process with this pid is still alive (not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
