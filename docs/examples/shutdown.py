"""Shutdown: queued tasks, running ones, and shielded ones that must not be cut off halfway."""

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

scheduler = lightwork.Scheduler(
    max_concurrency=50,
    pending_at_shutdown="run",  # queued tasks still start as slots free up, until drain_timeout
    drain_timeout=10,  # then queued tasks are dropped and running ones cancelled
    shield_timeout=30,  # except shielded ones: they are cancelled 30 s after shutdown began
)
captured: list[int] = []
receipts: list[int] = []
audit_log: list[int] = []


async def charge(order_id: int) -> None:
    """Ask the payment provider to capture the money; the pause stands in for it."""
    await asyncio.sleep(0.01)


async def mail(order_id: int) -> None:
    """Send the receipt by email; the pause stands in for the mail server."""
    await asyncio.sleep(0.01)


async def store(order_id: int) -> None:
    """Write the audit record; the pause stands in for the database."""
    await asyncio.sleep(0.01)


@lightwork.task(shield=True)
async def capture_payment(order_id: int) -> None:
    """Shielded by its definition: a capture cut off halfway is worse than a late one."""
    await charge(order_id)
    captured.append(order_id)


async def send_receipt(order_id: int) -> None:
    """An ordinary task: cancelled if still running at drain_timeout."""
    await mail(order_id)
    receipts.append(order_id)


async def record_audit(order_id: int) -> None:
    """Shielded by the call that adds it, below."""
    await store(order_id)
    audit_log.append(order_id)


async def checkout(request: Request) -> JSONResponse:
    """Three tasks after the response; two of them outlive the drain if they must."""
    order_id = int(request.path_params["order_id"])
    background = lightwork.get_background(request)
    background.add_task(capture_payment, order_id)
    background.add_task(send_receipt, order_id)
    background.add_task(record_audit(order_id), shield=True)
    return JSONResponse({"order_id": order_id}, status_code=202)


app = Starlette(
    routes=[Route("/checkout/{order_id:int}", checkout, methods=["POST"])],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)
