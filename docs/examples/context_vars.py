"""Context propagation: a task sees the contextvars of the request that added it."""

import asyncio
import contextvars

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

# A contextvar of your own, e.g. set by your authentication code.
tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="-")
log = structlog.get_logger("shop")
invoices: list[tuple[str, str]] = []


async def send_invoice(order_id: int) -> None:
    """Runs after the response, yet still sees its own request's tenant."""
    await asyncio.sleep(0.01)
    invoices.append((tenant.get(), f"order-{order_id}"))
    # With the lightwork.add_log_fields processor, this event carries request_id, method
    # and path, and task and task_id.
    log.info("invoice_sent", order_id=order_id)


def archive_order(order_id: int) -> None:
    """A sync task: the context travels into the worker thread as well."""
    invoices.append((tenant.get(), f"archive-{order_id}"))


async def checkout(request: Request) -> JSONResponse:
    """Set the tenant, then schedule the invoice and the archiving."""
    tenant.set(request.headers.get("x-tenant", "public"))
    order_id = int(request.path_params["order_id"])
    background = lightwork.get_background(request)
    background.add_task(send_invoice, order_id)
    background.add_task(archive_order, order_id)
    return JSONResponse({"order_id": order_id})


app = Starlette(
    routes=[Route("/checkout/{order_id:int}", checkout, methods=["POST"])],
    # request_context=True (the default) binds request_id, method and path for each request.
    middleware=[Middleware(lightwork.BackgroundMiddleware)],
)
