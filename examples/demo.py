"""lightwork demo: a Starlette app whose responses never wait for their background tasks.

``python examples/demo.py`` starts the app on real uvicorn (on uvloop when it is installed),
sends it a few requests from a client thread, prints how long each response took, lets the
tasks finish in the background, and shuts down cleanly. Watch for:

- the responses arriving in a few milliseconds while their tasks run for hundreds;
- ``background_task_slow``, logged while the slow report is still running;
- ``background_task_timed_out``, and the timed-out webhook reaching its ``on_error``;
- the sync thumbnail job running in one of lightwork's worker threads;
- at shutdown, ``background_scheduler_closed`` counting how every task ended.

``python examples/demo.py --serve`` keeps serving on http://127.0.0.1:8000 instead; try
``curl -X POST 'http://127.0.0.1:8000/signup?email=ada@example.com'``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
import urllib.request
from typing import TYPE_CHECKING

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request
    from structlog.typing import EventDict, WrappedLogger

STARTED = time.perf_counter()
SERVE_PORT = 8000


def since_start(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Stamp each log line with the seconds since the demo started, as the client's lines are."""
    event["timestamp"] = f"+{time.perf_counter() - STARTED:.3f}s"
    return event


# An application configures logging; lightwork never does. Console output at INFO: the
# per-task ``background_task_completed`` events are debug-level, so the tasks below log
# their own lines to show when they finish.
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,  # what you bind yourself
        lightwork.add_log_fields,  # the request's id, in its tasks too; a task's name and id
        structlog.processors.add_log_level,
        since_start,
        structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()),
    ],
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
)
log = structlog.get_logger("demo")

# Tasks past 250 ms are reported slow, unless their own definition says otherwise.
scheduler = lightwork.Scheduler(timeout=10, slow_threshold=0.25, drain_timeout=5)


# -- the background work -----------------------------------------------------------------


@lightwork.task(name="welcome-email", timeout=5, slow_threshold=1.0)
async def send_welcome_email(address: str) -> None:
    """Talk to a mail server for 300 ms; known to be slowish, so its threshold is 1 s."""
    await asyncio.sleep(0.3)
    log.info("email_sent", to=address)


async def build_report(month: str) -> int:
    """Take 600 ms, past the scheduler's 250 ms slow threshold."""
    await asyncio.sleep(0.6)
    return 42


def report_ready(rows: int) -> None:
    """A sync ``on_complete`` callback: gets the task's result."""
    log.info("report_ready", rows=rows)


async def call_partner_webhook(url: str) -> None:
    """Hang, as a partner's server sometimes does; the task's timeout ends it."""
    await asyncio.sleep(30)


async def webhook_failed(error: BaseException) -> None:
    """An async ``on_error`` callback: gets the ``TaskTimeoutError``."""
    log.info("webhook_gave_up", error=str(error), will_retry_at="tomorrow")


def make_thumbnail(image: str) -> None:
    """A sync function: lightwork runs it in a worker thread, off the event loop."""
    time.sleep(0.1)  # stands in for blocking image work
    log.info("thumbnail_made", image=image, thread=threading.current_thread().name)


# -- the endpoints ---------------------------------------------------------------------------


@lightwork.with_background
async def signup(request: Request, background: lightwork.Background) -> JSONResponse:
    """Get the handle as a parameter; the Starlette form picks up the @task defaults."""
    address = request.query_params.get("email", "ada@example.com")
    background.add_task(send_welcome_email, address)
    return JSONResponse({"welcome": address}, status_code=201)


async def report(request: Request) -> JSONResponse:
    """The options form: a coroutine object, then lightwork's options."""
    handle = lightwork.get_background(request).add_task(
        build_report("2026-11"), name="monthly-report", on_complete=report_ready
    )
    return JSONResponse({"task_id": handle.id, "state": handle.state}, status_code=202)


async def webhook(request: Request) -> JSONResponse:
    """A timeout per call, and an async on_error."""
    request.state.background.add_task(
        call_partner_webhook("https://partner.example/hook"),
        name="partner-webhook",
        timeout=0.2,
        on_error=webhook_failed,
    )
    return JSONResponse({"queued": True}, status_code=202)


async def avatar(request: Request) -> JSONResponse:
    """A sync callable, exactly as Starlette's BackgroundTasks takes it."""
    lightwork.get_background(request).add_task(make_thumbnail, "ada.png")
    return JSONResponse({"uploaded": True}, status_code=201)


async def index(request: Request) -> JSONResponse:
    """List what to try."""
    return JSONResponse({"try": [f"POST {path}" for path in ENDPOINTS]})


ENDPOINTS = ("/signup?email=ada@example.com", "/report", "/webhook", "/avatar")
app = Starlette(
    routes=[
        Route("/", index),
        Route("/signup", signup, methods=["POST"]),
        Route("/report", report, methods=["POST"]),
        Route("/webhook", webhook, methods=["POST"]),
        Route("/avatar", avatar, methods=["POST"]),
    ],
    middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler=scheduler)],
)


# -- running it --------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"+{time.perf_counter() - STARTED:.3f}s [client] {message}", flush=True)


def send_requests(port: int) -> None:
    """Call each endpoint once, as an ordinary HTTP client would, and time the responses."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        say(f"GET / -> {response.status}: the server is up")
    for path in ENDPOINTS:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, response.read().decode()
        took_ms = (time.perf_counter() - began) * 1000
        say(f"POST {path} -> {status} {body} in {took_ms:.1f} ms")
    say(f"all responses received; {scheduler.running} task(s) still running in the background")


async def demo() -> None:
    """Serve on a free port, run the client in a thread, then shut down as on SIGTERM."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # the client may connect at once: uvicorn accepts once it has started
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    loop = type(asyncio.get_running_loop())
    say(f"uvicorn on http://127.0.0.1:{port}, event loop {loop.__module__}.{loop.__name__}")
    try:
        await asyncio.to_thread(send_requests, port)
    finally:
        say("shutting down: the scheduler drains running tasks before the app stops")
        server.should_exit = True
        await serving
    listener.close()
    say("server stopped; every task ended and was logged")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """Return uvloop's loop factory when uvloop is installed, else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 -- optional
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main() -> None:
    if "--serve" in sys.argv[1:]:
        uvicorn.run(app, host="127.0.0.1", port=SERVE_PORT, log_level="info")
        return
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(demo())


if __name__ == "__main__":
    main()
