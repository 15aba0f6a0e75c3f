"""The loop watchdog: a thread that reports an event loop stuck in a call that never returns."""

import json
import urllib.request

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

RATES_URL = "http://rates.internal.example/latest.json"

# A thread checks the loop four times per 250 ms, and reports it once stuck that long.
scheduler = lightwork.Scheduler(watchdog=0.25)
rates: dict[str, float] = {}


def fetch_rates() -> dict[str, float]:
    """A blocking HTTP call with no timeout: if the server hangs, so does the caller."""
    with urllib.request.urlopen(RATES_URL) as response:
        loaded: dict[str, float] = json.load(response)
    return loaded


async def refresh_rates() -> None:
    """Wrong: the blocking call runs on the event loop, in a background task."""
    rates.update(fetch_rates())


async def refresh(request: Request) -> JSONResponse:
    """Refresh the rates after the response."""
    lightwork.get_background(request).add_task(refresh_rates)
    return JSONResponse({"refreshing": True}, status_code=202)


async def convert(request: Request) -> JSONResponse:
    """Wrong too: the handler itself blocks the loop while it fetches."""
    return JSONResponse({"rates": fetch_rates()})


app = Starlette(
    routes=[
        Route("/rates/refresh", refresh, methods=["POST"]),
        Route("/rates", convert),
    ],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)
