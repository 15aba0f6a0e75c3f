"""Limits and back-pressure: a cap on running tasks, a bounded queue, a per-name limit, a 503."""

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

scheduler = lightwork.Scheduler(
    max_concurrency=20,  # tasks running at once; more wait in a queue, in order
    max_pending=100,  # tasks waiting in that queue; past it, `overflow` applies
    limits={"send-email": 2},  # the mail server takes two connections at a time
    overflow="reject",  # the default: add_task raises BackgroundQueueFull
)
sent: list[str] = []


async def deliver(address: str) -> None:
    """Talk to the mail server; the pause stands in for it."""
    await asyncio.sleep(0.01)
    sent.append(address)


@lightwork.task(name="send-email")
async def send_email(address: str) -> None:
    """Every task of this name counts against limits["send-email"]."""
    await deliver(address)


async def signup(request: Request) -> JSONResponse:
    """A full queue makes add_task raise; the exception handler answers 503."""
    address = (await request.json())["email"]
    lightwork.get_background(request).add_task(send_email, address)
    return JSONResponse({"email": address}, status_code=201)


async def newsletter(request: Request) -> JSONResponse:
    """A bulk sender waits for room in the queue instead of failing: back-pressure."""
    addresses = (await request.json())["addresses"]
    background = lightwork.get_background(request)
    for address in addresses:
        await background.add_task_wait(send_email, address)
    return JSONResponse({"queued": len(addresses)}, status_code=202)


async def tasks(request: Request) -> JSONResponse:
    """What the scheduler is doing: for an admin page or a health check."""
    running = [
        {"id": h.id, "name": h.name, "route": h.route, "duration_s": h.duration}
        for h in scheduler.running_tasks()  # longest-running first
    ]
    return JSONResponse({"counts": scheduler.counts(), "running": running})


app = Starlette(
    routes=[
        Route("/signup", signup, methods=["POST"]),
        Route("/newsletter", newsletter, methods=["POST"]),
        Route("/tasks", tasks),
    ],
    # A request's tasks start after its response, and keep their room from the moment they
    # are added: a full queue is known in the request, never after it.
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
    exception_handlers={lightwork.BackgroundQueueFull: lightwork.queue_full_response},
)
