"""Request ids: one id in the log events of a request and of its tasks, and in the response."""

import asyncio

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

log = structlog.get_logger("shop")


async def send_confirmation(order_id: int) -> None:
    """Runs after the response; its events carry the request's id, and the task's own."""
    await asyncio.sleep(0.01)
    log.info("confirmation_sent", order_id=order_id)


async def place_order(request: Request) -> JSONResponse:
    """Log, add a task, and hand the request id back: a customer can quote it to support."""
    order_id = int(request.path_params["order_id"])
    log.info("order_placed", order_id=order_id)  # carries request_id, method and path
    handle = lightwork.get_background(request).add_task(send_confirmation, order_id)
    request_id = lightwork.current_request_id()  # None with request_context=False
    return JSONResponse(
        {"order_id": order_id, "task_route": handle.route},
        status_code=201,
        headers={} if request_id is None else {"X-Request-ID": request_id},
    )


app = Starlette(
    routes=[Route("/orders/{order_id:int}", place_order, methods=["POST"])],
    # request_context=True is the default; it is spelled out here to show where it goes.
    middleware=[Middleware(lightwork.BackgroundMiddleware, request_context=True)],
)
