"""Instructions per served request, counted by callgrind: what the server process pays.

Run ``python -m bench.served`` (valgrind needed; about four minutes on two cores). The apps of
``bench.requests``, each served by a real uvicorn (httptools, uvloop) on 127.0.0.1, in a
process run under callgrind; a client in a process of its own, not counted, sends the
requests one at a time over one keep-alive connection, each after the whole previous
response. Each app runs twice, with a warm-up only and with N more requests, and the
difference over N is its instructions per request, the server's share included: the
noise-free form of the timed "req/s under uvicorn" ratios that issue 15's targets are stated
for (0.95x of the plain endpoint with the middleware; 0.9x of the bare ``create_task``
endpoint's with a lightwork task), which a shared two-core machine times only to 10%.
uvicorn's main loop is replaced by a wait for the client: it would tick every 0.1 s, on the
clock, not per request; for the same reason, lightwork's watchdog beats fifty times less
often, as in ``bench.instructions``. A task app's tasks run between requests, in the turns
of the loop that wait for the next one, and the child checks that every one of them ran.
The lightwork apps run compiled (when the install built it) and pure
(``LIGHTWORK_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import TYPE_CHECKING, Final, cast

import uvicorn

import lightwork

from . import requests
from ._contenders import _stretched
from ._runtime import configure_logging
from .requests import APPS, TASK_APPS, _app, count_apps, print_counts, run_child

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.applications import Starlette
    from starlette.types import ASGIApp

WARM_UP_REQUESTS: Final = 200
HOST: Final = "127.0.0.1"
CLIENT_TIMEOUT_S: Final = 60.0
"""How long the client waits for the server at any one step (connecting, one response)
before it gives up: callgrind runs the server about fifty times slower, but a request still
takes well under a second."""


class _CountedServer(uvicorn.Server):
    """uvicorn's server, whose main loop runs the client instead of ticking on the clock.

    uvicorn's own main loop wakes every 0.1 s to update the date header and check for exit:
    under callgrind, some thousand instructions a tick, as many ticks as the run lasts.
    """

    def __init__(self, config: uvicorn.Config, count: int, check: Callable[[], None]) -> None:
        super().__init__(config)
        self.count = count
        """Requests the client sends, the warm-up's included."""
        self.check = check
        """Called once the client is done, before the shutdown: raises if a task did not run."""

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the date and server headers, as uvicorn's first tick sets them
        port = self.servers[0].sockets[0].getsockname()[1]
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.served", "--client", HOST, str(port), str(self.count)
        )
        try:
            # The client gives up at any step that takes over CLIENT_TIMEOUT_S; this bound,
            # a second a request, fifty times what one takes under callgrind, is the last resort.
            async with asyncio.timeout(CLIENT_TIMEOUT_S + self.count):
                code = await client.wait()
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()
        if code != 0:
            raise RuntimeError(f"the client exited with {code}")
        self.check()
        self.should_exit = True


def _stretch_watchdog(app: ASGIApp) -> None:
    """Give each ``BackgroundMiddleware`` of *app* a scheduler whose watchdog beats
    ``CLOCK_STRETCH`` times less often (see ``bench._contenders``), before it is built.

    The beats come every 5 ms of the clock: under callgrind, fifty times as many a request as
    at full speed, 2.7% of the middleware's count, and more on a busier machine.
    """
    stretched = _stretched({})
    if not stretched:  # not under callgrind
        return
    for middleware_class, _, options in cast("Starlette", app).user_middleware:
        if middleware_class is lightwork.BackgroundMiddleware:
            options["scheduler"] = lightwork.Scheduler(**stretched)


def _check_tasks_ran(key: str, app: ASGIApp, requests_sent: int) -> None:
    """Raise unless every request's no-op task has run to its end (before the shutdown, which
    would run the lightwork ones that had not)."""
    if key not in TASK_APPS:
        return
    if key == "bare_task":
        if requests._tasks:
            raise RuntimeError(f"{len(requests._tasks)} create_task tasks did not end")
        return
    layer = getattr(app, "middleware_stack", None)
    while layer is not None and not isinstance(layer, lightwork.BackgroundMiddleware):
        layer = getattr(layer, "app", None)
    assert layer is not None
    completed = layer.scheduler.counts()["completed"]
    if completed != requests_sent:
        raise RuntimeError(f"{completed} lightwork tasks completed, not {requests_sent}")


async def _child(key: str, n: int) -> None:
    configure_logging()  # INFO, as in production: no per-task debug event
    app = _app(key)
    _stretch_watchdog(app)
    config = uvicorn.Config(
        app,
        host=HOST,
        port=0,  # a free port, chosen when the socket binds
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(CLIENT_TIMEOUT_S),
    )
    count = WARM_UP_REQUESTS + n
    await _CountedServer(config, count, lambda: _check_tasks_ran(key, app, count)).serve()


def _client(host: str, port: int, count: int) -> None:
    """Send *count* GET requests, one at a time on one keep-alive connection; exit 1 on error."""
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    with socket.create_connection((host, port), timeout=CLIENT_TIMEOUT_S) as connection:
        buffer = b""
        for sent in range(count):
            connection.sendall(request)
            while (head_end := buffer.find(b"\r\n\r\n")) < 0:
                buffer += _received(connection)
            head = buffer[:head_end].lower()
            length_at = head.find(b"content-length:")
            if not head.startswith(b"http/1.1 200") or length_at < 0:
                sys.exit(f"request {sent}: unexpected response {head!r}")
            end = head_end + 4 + int(head[length_at + 15 :].split(b"\r\n", 1)[0])
            while len(buffer) < end:
                buffer += _received(connection)
            buffer = buffer[end:]


def _received(connection: socket.socket) -> bytes:
    data = connection.recv(65536)
    if not data:
        sys.exit("the server closed the connection")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="requests counted (default 2,000)")
    parser.add_argument(
        "--apps", nargs="+", choices=list(APPS), help="apps to count (their anchors too)"
    )
    parser.add_argument("--child", nargs=2, metavar=("APP", "N"))
    parser.add_argument("--client", nargs=3, metavar=("HOST", "PORT", "COUNT"))
    args = parser.parse_args()
    if args.client:
        host, port, count = args.client
        _client(host, int(port), int(count))
        return
    if run_child(args.child, _child):
        return
    counts = count_apps("bench.served", args.apps or APPS, args.n)
    print_counts(
        f"instructions per served request, callgrind, uvicorn (httptools, uvloop), "
        f"one keep-alive connection, {args.n:,} requests",
        "with a no-op task, run in the turns of the loop between requests:",
        counts,
    )


if __name__ == "__main__":
    main()
