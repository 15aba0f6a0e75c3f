"""Helpers for the offload tests: the end-to-end app, loop-lag measurement, process checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork
from lightwork import Job, JobStatus, Offloader, Outbox, Scheduler
from tests import offload_jobs as jobs
from tests.support import events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, MutableMapping

    from starlette.requests import Request

    from lightwork.backends import OffloadBackend
    from lightwork.testing import TaskRecorder
    from tests.offload_servers import RedisServer

TICK_S = 0.005


@dataclass
class LoopLag:
    """The worst delay, in seconds, with which the event loop woke a short periodic timer."""

    worst: float = 0.0
    ticks: int = 0


@contextlib.asynccontextmanager
async def measure_loop_lag() -> AsyncIterator[LoopLag]:
    """Tick every 5 ms in the background and record how late each tick came.

    A full collection first: late in a suite, one of its heap can hold the loop for 100 ms
    on a slow machine, and it should not land in the measure (it did once, on 3.13).
    """
    gc.collect()
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
    """Tell whether a process with this pid is alive: a killed one its parent has not reaped
    yet (a zombie) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):  # no /proc here: trust the signal
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return True


async def burn(request: Request) -> JSONResponse:
    ref = lightwork.get_background(request).offload(jobs.burn_cpu, jobs.CPU_JOB_S)
    return JSONResponse({"job_id": ref.job_id}, status_code=202)


async def offload_cpu_job_through_app(
    offloader: lightwork.Offloader, tasks: TaskRecorder
) -> dict[str, Any]:
    """Offload a 200 ms CPU job from a real Starlette app's endpoint; return what it returned.

    Checks, on the way, that the job ran in another process while this process's event
    loop stayed responsive: its worst lag far below the job's duration (run inline on the
    loop, the lag would be the whole duration).
    """
    scheduler = Scheduler(offload=offloader)
    app = Starlette(
        routes=[Route("/burn", burn, methods=["POST"])],
        middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler)],
    )
    transport = httpx2.ASGITransport(app=app)
    async with (
        scheduler,
        httpx2.AsyncClient(transport=transport, base_url="http://test") as client,
        measure_loop_lag() as lag,
    ):
        response = await client.post("/burn")
        assert response.status_code == 202
        await tasks.join()
        ref = offloader.job(response.json()["job_id"])
        outcome: dict[str, Any] = await ref.result(timeout=60)
        assert await ref.status() is JobStatus.COMPLETED
    assert outcome["pid"] != os.getpid()
    assert outcome["spins"] > 0
    assert lag.ticks > 10
    assert lag.worst < jobs.CPU_JOB_S / 2
    return outcome


async def offload_through_an_outage(
    server: RedisServer,
    backend: OffloadBackend,
    folder: Path,
    tasks: TaskRecorder,
    logs: list[MutableMapping[str, Any]],
    jobs_during: int = 4,
) -> list[str]:
    """Kill the broker mid-run, offload meanwhile, restart it; return what the worker ran.

    Checks on the way: jobs offloaded while the broker is down wait in the outbox
    (``DEFERRED``, logged ``offload_deferred``); once it is back, the same empty server on
    the same port, every one of them is delivered under the id given at ``offload()``.
    """
    tally = folder / "tally.txt"
    outbox = Outbox(folder / "outbox.db", backoff=0.05, max_backoff=0.3)
    async with Offloader(backend, outbox=outbox) as offloader, Scheduler(offload=offloader) as app:
        before = app.offload(Job(jobs.record, str(tally), "before"), job_id="before")
        assert await before.result(timeout=30) == "before"

        server.kill()  # mid-run: the broker is gone
        during = [
            app.offload(Job(jobs.record, str(tally), f"during-{n}"), job_id=f"during-{n}")
            for n in range(jobs_during)
        ]
        await tasks.join()
        for ref in during:
            assert await ref.status() is JobStatus.DEFERRED

        server.start()  # the same port, and empty: the outbox has the jobs
        for ref in during:
            assert await ref.result(timeout=60) == ref.job_id
    ids = {ref.job_id for ref in during}
    assert {e["job_id"] for e in events(logs, "offload_deferred")} == ids
    redelivered = [e for e in events(logs, "offload_enqueued") if e["job_id"] in ids]
    assert {e["job_id"] for e in redelivered} == ids
    assert all(e["attempts"] >= 2 for e in redelivered)
    return tally.read_text().splitlines()
