"""The web app: ``uvicorn examples.offload_saq.app:app``.

``POST /primes?below=N`` offloads a job and answers at once with its id; ``GET /jobs/{id}``
tells where the job is, and its result once it has one. If Redis is down when a job is
offloaded, the job waits in the outbox (a SQLite file) and is delivered once Redis is back,
also after a restart of the app.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork
from lightwork import Job, Offloader, Scheduler
from lightwork.backends.saq import SaqBackend

from .jobs import count_primes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")

offloader = Offloader(
    SaqBackend(REDIS_URL, job_options={"timeout": 300, "retries": 2}),
    outbox=os.environ.get("OUTBOX_PATH", "lightwork-outbox.sqlite3"),
)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with offloader:  # replays the outbox at start; closes Redis connections at the end
        yield


async def start_counting(request: Request) -> JSONResponse:
    below = int(request.query_params.get("below", 300_000))
    # The job id is SAQ's job key: asking twice for the same count runs it once.
    ref = lightwork.get_background(request).offload(
        Job(count_primes, below), job_id=f"primes-{below}"
    )
    return JSONResponse({"job_id": ref.job_id}, status_code=202)


async def job_status(request: Request) -> JSONResponse:
    snapshot = await offloader.job(request.path_params["job_id"]).snapshot()
    return JSONResponse(dataclasses.asdict(snapshot))  # status, and result or error


app = Starlette(
    routes=[
        Route("/primes", start_counting, methods=["POST"]),
        Route("/jobs/{job_id}", job_status),
    ],
    middleware=[Middleware(lightwork.BackgroundMiddleware, Scheduler(offload=offloader))],
    lifespan=lifespan,
)
