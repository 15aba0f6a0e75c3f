"""Seeing background work: Prometheus metrics, OpenTelemetry spans, and the live status page."""

import asyncio
import contextlib
import hmac
import os
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import lightwork
from lightwork.otel import TaskTracer
from lightwork.prometheus import TaskCollector
from lightwork.status import status_app

scheduler = lightwork.Scheduler()

# Prometheus: read at scrape time, nothing per task. Here in a registry of its own;
# leave out `registry=` to use prometheus_client's default one.
registry = CollectorRegistry()
TaskCollector(scheduler, registry=registry)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Trace tasks while the app runs: a span per task, under the span of its request."""
    with TaskTracer():  # to the globally set tracer provider; TaskTracer(provider) for another
        yield


def is_admin(request: Request) -> bool:
    """Let in requests that carry the admin token: the page shows task names and routes."""
    token = os.environ.get("STATUS_TOKEN", "")
    given = request.headers.get("x-status-token", "")
    return bool(token) and hmac.compare_digest(given, token)


async def generate_invoice(order_id: int) -> None:
    """Render and store an invoice; the pause stands in for the real work."""
    await asyncio.sleep(0.05)


async def checkout(request: Request) -> JSONResponse:
    """Answer at once; the invoice follows."""
    order_id = int(request.path_params["order_id"])
    lightwork.get_background(request).add_task(generate_invoice, order_id)
    return JSONResponse({"order": order_id}, status_code=202)


app = Starlette(
    routes=[
        Route("/orders/{order_id:int}/checkout", checkout, methods=["POST"]),
        Mount("/metrics", make_asgi_app(registry)),
        Mount("/_lightwork", status_app(check=is_admin)),
    ],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
    lifespan=lifespan,
)
