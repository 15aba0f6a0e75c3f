"""The app that ``test_shutdown_load.py`` serves with uvicorn, in a subprocess of its own.

Like a real app it configures structlog itself: JSON lines, debug level, appended to the file
named by ``LIGHTWORK_LOAD_LOG``. Each request to ``/work/{i}`` adds one task of every kind
below, logs ``load_task_added`` for each (the record of what was accepted, should the
response never reach the client), and answers with the task ids; request ``i`` answers 404
when ``i % 10 == 7`` and raises when ``i % 10 == 9``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

LONG_S: Final = 60.0
"""Longer than any test waits: such tasks end only by their timeout or by shutdown."""

DRAIN_TIMEOUT_S: Final = 1.0

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ],
    wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    logger_factory=structlog.WriteLoggerFactory(
        Path(os.environ["LIGHTWORK_LOAD_LOG"]).open("a", encoding="utf-8")  # noqa: SIM115
    ),
)
log = structlog.get_logger("load_app")


class LoadError(Exception):
    """Raised by the failing tasks and handlers, on purpose."""


async def quick() -> None:
    await asyncio.sleep(0)


async def short(i: int) -> None:
    await asyncio.sleep(i % 5 / 100)


async def fail() -> None:
    await asyncio.sleep(0.01)
    raise LoadError("a task that fails")


def blocking_io() -> None:
    time.sleep(0.005)


async def endless() -> None:
    await asyncio.sleep(LONG_S)


def add_tasks(background: lightwork.Background, i: int) -> list[int]:
    adders: list[Callable[[], lightwork.TaskHandle[Any]]] = [
        lambda: background.add_task(quick),
        lambda: background.add_task(short, i),
        lambda: background.add_task(fail),
        lambda: background.add_task(blocking_io),
        lambda: background.add_task(endless(), name="timeout", timeout=0.1),
        lambda: background.add_task(endless(), name="long", timeout=None),
        lambda: background.add_task(quick(), name="on_success", run_if="success"),
    ]
    ids = []
    for add in adders:
        handle = add()
        log.info("load_task_added", task_id=handle.id, kind=handle.name, request=i)
        ids.append(handle.id)
    return ids


async def work(request: Request) -> JSONResponse:
    i = int(request.path_params["i"])
    ids = add_tasks(lightwork.get_background(request), i)
    if i % 10 == 9:
        raise LoadError("a handler that fails after adding its tasks")
    return JSONResponse({"task_ids": ids}, status_code=404 if i % 10 == 7 else 200)


scheduler = lightwork.Scheduler(drain_timeout=DRAIN_TIMEOUT_S, slow_threshold=None)
app = Starlette(
    routes=[Route("/work/{i:int}", work)],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)
