"""The core on its own: a scheduler with no offload bridge, and the port the bridge plugs into."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import lightwork
from lightwork._core._scheduler import Scheduler as CoreScheduler
from lightwork._offload._offloader import Offloader


@lightwork.offloadable
def double(n: int) -> int:
    return 2 * n


async def test_a_core_scheduler_without_a_bridge_rejects_what_it_cannot_hand_over() -> None:
    scheduler = CoreScheduler(max_concurrency=1, max_pending=1, overflow="offload")
    release = asyncio.Event()
    async with scheduler:
        running = scheduler.add_task(release.wait())
        queued = scheduler.add_task(release.wait())
        with pytest.raises(lightwork.BackgroundQueueFull):
            scheduler.add_task(double, 21)
        release.set()
        await running
        await queued
    assert scheduler.counts()["dropped"] == 1
    assert scheduler.counts()["offloaded"] == 0


def test_the_public_scheduler_takes_every_option_of_the_core_one_with_its_default() -> None:
    def options(cls: type[CoreScheduler]) -> dict[str, object]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        return {p.name: (p.kind, p.default) for p in parameters if p.name != "offload"}

    assert options(lightwork.Scheduler) == options(CoreScheduler)
    assert isinstance(lightwork.Scheduler().offloader, Offloader)
    assert isinstance(lightwork.Scheduler(), CoreScheduler)
