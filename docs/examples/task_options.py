"""Per-call options: a timeout, callbacks, a slow threshold, and an explicit scheduler."""

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

# The defaults every task gets unless it says otherwise.
scheduler = lightwork.Scheduler(timeout=30, slow_threshold=0.1)

# How long each partner's server takes to answer; one of them never does.
PARTNER_LATENCY_S = {"quick-partner": 0.01, "stuck-partner": 3600.0}
delivered: list[str] = []
failures: list[BaseException] = []


async def deliver_webhook(partner: str) -> str:
    """Post an event to a partner's server and return its receipt."""
    await asyncio.sleep(PARTNER_LATENCY_S[partner])
    return f"receipt-for-{partner}"


def record_delivery(receipt: str) -> None:
    """``on_complete`` may be a plain function; it gets the task's result."""
    delivered.append(receipt)


async def schedule_retry(error: BaseException) -> None:
    """``on_error`` may be async; a timed-out task gives it a ``TaskTimeoutError``."""
    await asyncio.sleep(0)  # e.g. write the retry to your database
    failures.append(error)


async def notify_partner(request: Request) -> JSONResponse:
    """Deliver the webhook after the response, within half a second."""
    partner = request.path_params["partner"]
    handle = lightwork.get_background(request).add_task(
        deliver_webhook(partner),
        name="partner-webhook",
        timeout=0.5,
        slow_threshold=0.25,
        on_complete=record_delivery,
        on_error=schedule_retry,
    )
    return JSONResponse({"task_id": handle.id}, status_code=202)


app = Starlette(
    routes=[Route("/webhooks/{partner}", notify_partner, methods=["POST"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)
