"""The web app: ``uvicorn examples.offload_celery.app:app``.

``POST /reports/{month}`` sends a job to Celery and answers at once with its id;
``GET /jobs/{id}`` tells where the job is, and its result once it has one. If the broker is
down when a job is offloaded, the job waits in the outbox (a SQLite file) and is sent once
the broker is back, also after a restart of the app.
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
from lightwork.backends.celery import CeleryBackend

from .jobs import monthly_report

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

BROKER_URL = os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0")

offloader = Offloader(
    CeleryBackend(BROKER_URL, send_options={"expires": 3600}),
    outbox=os.environ.get("OUTBOX_PATH", "lightwork-outbox.sqlite3"),
)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with offloader:  # replays the outbox at start; closes the Celery client at the end
        yield


async def start_report(request: Request) -> JSONResponse:
    month = request.path_params["month"]
    # The job id is Celery's task id; the job sees it as ``lightwork.current_job_id()``.
    ref = lightwork.get_background(request).offload(
        Job(monthly_report, month), job_id=f"report-{month}"
    )
    return JSONResponse({"job_id": ref.job_id}, status_code=202)


async def job_status(request: Request) -> JSONResponse:
    snapshot = await offloader.job(request.path_params["job_id"]).snapshot()
    return JSONResponse(dataclasses.asdict(snapshot))  # status, and result or error


app = Starlette(
    routes=[
        Route("/reports/{month}", start_report, methods=["POST"]),
        Route("/jobs/{job_id}", job_status),
    ],
    middleware=[Middleware(lightwork.BackgroundMiddleware, Scheduler(offload=offloader))],
    lifespan=lifespan,
)
