"""Middleware and scheduler options: tasks that start at once, sync endpoints, thread limits."""

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import lightwork

scheduler = lightwork.Scheduler(
    timeout=60,  # seconds a task may run, unless it says otherwise
    slow_threshold=0.5,  # seconds before a still-running task is reported slow
    drain_timeout=5,  # seconds shutdown waits for running tasks before cancelling them
    max_threads=4,  # sync tasks running at once, apart from Starlette's own thread pool
)
pings: list[str] = []


async def build_export(rows: int) -> int:
    """Build an export file; returns how many rows it wrote."""
    await asyncio.sleep(0.01)
    return rows


@lightwork.with_background
async def export(request: Request, background: lightwork.Background) -> StreamingResponse:
    """Stream progress while the export runs: the task must start before the response ends."""
    handle = background.add_task(build_export(1000), name="export")

    async def progress() -> AsyncIterator[str]:
        yield "building the export\n"
        yield f"done: {await handle} rows\n"

    return StreamingResponse(progress(), media_type="text/plain")


async def record_ping(source: str) -> None:
    """Note a ping."""
    pings.append(source)


@lightwork.with_background
def ping(request: Request, background: lightwork.Background) -> PlainTextResponse:
    """A sync endpoint runs in Starlette's thread pool; it can add tasks all the same."""
    background.add_task(record_ping, "sync endpoint")
    return PlainTextResponse("pong")


app = Starlette(
    routes=[Route("/export", export), Route("/ping", ping)],
    middleware=[
        Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler, start="immediately")
    ],
)
