"""The app part 3 loads, served by real uvicorn: ``python -m bench._server VARIANT PORT``.

VARIANT ``bare`` has no middleware; ``lightwork`` has ``BackgroundMiddleware``, so that the
cost of the middleware itself is measured on the same plain endpoint. Every task endpoint
schedules the same 50 ms task and answers at once. ``/stats`` reports, and resets, how long
the garbage collector ran: the anchors traced the Starlette ``BackgroundTask`` tail to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import lightwork

from ._runtime import configure_logging

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

TASK_S: Final = 0.05
VARIANTS: Final = ("bare", "lightwork", "lightwork-frozen")


async def fifty_ms() -> None:
    """The background task every task endpoint schedules."""
    await asyncio.sleep(TASK_S)


class GcClock:
    """Adds up the time the garbage collector runs, through ``gc.callbacks``."""

    def __init__(self) -> None:
        self._started = 0.0
        self.reset()

    def reset(self) -> None:
        self.total_s = 0.0
        self.max_pause_s = 0.0
        self.full_collections = 0
        self.since = time.perf_counter()
        self.cpu_since = time.process_time()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.total_s += pause
        self.max_pause_s = max(self.max_pause_s, pause)
        if info["generation"] == 2:
            self.full_collections += 1

    def report(self) -> dict[str, float]:
        wall = time.perf_counter() - self.since
        figures = {
            "wall_s": wall,
            "cpu_s": time.process_time() - self.cpu_since,
            "gc_s": self.total_s,
            "gc_max_pause_ms": self.max_pause_s * 1000,
            "full_collections": float(self.full_collections),
            "heap_objects": float(len(gc.get_objects())),
        }
        self.reset()
        return figures


gc_clock = GcClock()
_tasks: set[asyncio.Task[None]] = set()


async def plain(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def starlette_task(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", background=BackgroundTask(fifty_ms))


async def create_task(_request: Request) -> PlainTextResponse:
    task = asyncio.get_running_loop().create_task(fifty_ms())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return PlainTextResponse("ok")


async def lightwork_task(request: Request) -> PlainTextResponse:
    lightwork.get_background(request).add_task(fifty_ms)
    return PlainTextResponse("ok")


async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(gc_clock.report())


@contextlib.asynccontextmanager
async def freeze_after_startup(_app: Starlette) -> AsyncIterator[None]:
    """Once the app has started, move what startup made out of the collector's sight, so that
    full collections under load walk only what requests make (the guide's advice, without its
    ``gc.collect()`` first: this app's startup leaves little garbage)."""
    gc.freeze()
    yield


def build_app(variant: str) -> Starlette:
    """Return the app for *variant*: every endpoint, with or without ``BackgroundMiddleware``,
    and for ``lightwork-frozen`` with ``gc.freeze()`` after startup."""
    routes = [
        Route("/plain", plain),
        Route("/starlette-task", starlette_task),
        Route("/create-task", create_task),
        Route("/stats", stats),
    ]
    if variant == "bare":
        return Starlette(routes=routes)
    return Starlette(
        routes=[*routes, Route("/lightwork", lightwork_task)],
        middleware=[Middleware(lightwork.BackgroundMiddleware)],
        lifespan=freeze_after_startup if variant == "lightwork-frozen" else None,
    )


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    configure_logging()
    gc.callbacks.append(gc_clock)
    uvicorn.run(
        build_app(variant),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
