"""lightwork's offload bridge with no server at all: CPU-heavy jobs in a local process pool.

``python examples/offload_local.py`` starts a Starlette app on uvicorn, asks it to count
primes (pure-Python CPU work, about a second), and pings the app while the job runs: every
ping is answered in a few milliseconds, because the job runs in another process, not on the
server's event loop. Then it fetches the job's result by its id, and shuts down.

``python examples/offload_local.py --serve`` keeps serving on http://127.0.0.1:8000; try
``curl -X POST 'http://127.0.0.1:8000/primes?below=500000'``, then
``curl http://127.0.0.1:8000/jobs/primes-500000``.

The local pool keeps its jobs in memory: they do not survive a restart. Move to SAQ or
Celery (see the examples next to this one) when they must; the app's code stays the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import urllib.request
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

import lightwork
from lightwork import Job, Offloader, Scheduler
from lightwork.backends import LocalBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

SERVE_PORT = 8000
PRIMES_BELOW = 300_000

# An application configures logging; lightwork never does. At INFO, a hand-off shows only when
# it needs attention (deferred or failed); DEBUG shows each one (offload_enqueued).
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


# -- the job: a plain function, registered under a stable name -----------------------------


@lightwork.offloadable("count-primes")
def count_primes(below: int) -> dict[str, int]:
    """Count the primes below *below* the slow way: CPU-bound, and holding the GIL."""
    primes = sum(1 for n in range(2, below) if all(n % d for d in range(2, math.isqrt(n) + 1)))
    return {"below": below, "primes": primes, "pid": os.getpid()}


# -- the app -------------------------------------------------------------------------------

offloader = Offloader(LocalBackend(max_workers=2, timeout=60))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with offloader:  # closes the pool at shutdown, after the scheduler has drained
        yield


async def start_counting(request: Request) -> JSONResponse:
    below = int(request.query_params.get("below", PRIMES_BELOW))
    background = lightwork.get_background(request)
    # The job id makes the request idempotent: asking twice counts once.
    ref = background.offload(Job(count_primes, below), job_id=f"primes-{below}")
    return JSONResponse({"job_id": ref.job_id}, status_code=202)


async def job_status(request: Request) -> JSONResponse:
    snapshot = await offloader.job(request.path_params["job_id"]).snapshot()
    return JSONResponse(dataclasses.asdict(snapshot))  # status, and result or error


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"pong": True, "pid": os.getpid()})


app = Starlette(
    routes=[
        Route("/primes", start_counting, methods=["POST"]),
        Route("/jobs/{job_id}", job_status),
        Route("/ping", ping),
    ],
    middleware=[Middleware(lightwork.BackgroundMiddleware, Scheduler(offload=offloader))],
    lifespan=lifespan,
)


# -- running it ----------------------------------------------------------------------------


def call(port: int, method: str, path: str) -> tuple[dict[str, Any], float]:
    """Send one request; return its JSON body and how long the response took, in ms."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body, (time.perf_counter() - began) * 1000


def drive(port: int) -> None:
    """Start the job, ping the app while it runs, then show the job's result."""
    body, took_ms = call(port, "POST", f"/primes?below={PRIMES_BELOW}")
    job_id = body["job_id"]
    print(f"POST /primes -> {job_id!r} in {took_ms:.1f} ms: the job runs in the background")
    pings: list[float] = []
    while (status := call(port, "GET", f"/jobs/{job_id}")[0])["status"] != "completed":
        if status["status"] in ("failed", "cancelled", "undelivered", "unknown"):
            raise SystemExit(f"the job ended {status['status']}")
        pong, took_ms = call(port, "GET", "/ping")
        pings.append(took_ms)
        time.sleep(0.02)
    result = status["result"]
    print(f"while it ran: {len(pings)} pings, the slowest answered in {max(pings):.1f} ms")
    print(
        f"result: {result['primes']} primes below {result['below']}, counted in process "
        f"{result['pid']} (the web server is process {pong['pid']})"
    )


def main() -> None:
    if "--serve" in sys.argv[1:]:
        uvicorn.run(app, host="127.0.0.1", port=SERVE_PORT)
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = threading.Thread(target=server.run)
    serving.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not serving.is_alive():
                raise SystemExit("uvicorn did not start")
            time.sleep(0.01)
        drive(port)
    finally:
        server.should_exit = True
        serving.join()


if __name__ == "__main__":  # the pool's worker processes import this module too
    main()
