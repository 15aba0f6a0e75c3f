"""Context propagation: a task sees the contextvars of the request that added it."""

import asyncio
import contextvars
import uuid

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import lightwork

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = structlog.get_logger("shop")
invoices: list[tuple[str, str]] = []


class RequestIdMiddleware:
    """Give each request an id, in a contextvar and in every structlog event it causes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the request's id, then call the app in the same context."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        current = headers.get(b"x-request-id", b"").decode() or uuid.uuid4().hex
        request_id.set(current)
        structlog.contextvars.bind_contextvars(request_id=current)
        await self.app(scope, receive, send)


async def send_invoice(order_id: int) -> None:
    """Runs after the response, yet still sees its own request's id."""
    await asyncio.sleep(0.01)
    invoices.append((request_id.get(), f"order-{order_id}"))
    log.info("invoice_sent", order_id=order_id)  # carries request_id too


def archive_order(order_id: int) -> None:
    """A sync task: the context travels into the worker thread as well."""
    invoices.append((request_id.get(), f"archive-{order_id}"))


async def checkout(request: Request) -> JSONResponse:
    """Schedule the invoice and the archiving."""
    order_id = int(request.path_params["order_id"])
    background = lightwork.get_background(request)
    background.add_task(send_invoice, order_id)
    background.add_task(archive_order, order_id)
    return JSONResponse({"order_id": order_id, "request_id": request_id.get()})


app = Starlette(
    routes=[Route("/checkout/{order_id:int}", checkout, methods=["POST"])],
    middleware=[
        Middleware(RequestIdMiddleware),
        Middleware(lightwork.BackgroundMiddleware),
    ],
)
