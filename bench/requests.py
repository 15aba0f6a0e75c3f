"""Instructions per request, counted by callgrind: what ``BackgroundMiddleware`` adds.

Run ``python -m bench.requests`` (valgrind needed; about a minute). A plain Starlette
endpoint is called in-process, through ASGI alone (no server, no socket, no client), without
the middleware, behind an empty pure ASGI middleware (the least any middleware adds), with
it, and with it but ``request_context=False``; each app runs twice under
callgrind, with a warm-up only and with N more requests, and the difference over N is its
instructions per request. The ratio is the plain endpoint's count over the app's: the figure
that issue 15's "0.95x of the endpoint without it" target reads, without the server's share,
which the HTTP part measures. The middleware runs compiled (when the install built it) and
pure (``LIGHTWORK_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import lightwork

from .instructions import instructions_per

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

WARM_UP_REQUESTS: Final = 200
APPS: Final[dict[str, tuple[str, list[dict[str, Any]]]]] = {
    "plain": ("plain endpoint", []),
    "empty": ("plain + an empty ASGI middleware", []),
    "middleware": ("plain + BackgroundMiddleware", [{}]),
    "no_context": ("... with request_context=False", [{"request_context": False}]),
}
"""Each app: its label, and the options of each ``BackgroundMiddleware`` it is wrapped in."""
_SCOPE: Final[dict[str, Any]] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 80),
}


async def _plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


class _EmptyMiddleware:
    """The least a pure ASGI middleware costs: one more coroutine call per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _app(key: str) -> ASGIApp:
    _, middleware = APPS[key]
    stack = [Middleware(lightwork.BackgroundMiddleware, **options) for options in middleware]
    if key == "empty":
        stack = [Middleware(_EmptyMiddleware)]
    return Starlette(routes=[Route("/", _plain)], middleware=stack)


async def _serve(app: ASGIApp, n: int) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    for _ in range(n):
        await app(dict(_SCOPE), receive, send)


async def _child(key: str, n: int) -> None:
    app = _app(key)
    await _serve(app, WARM_UP_REQUESTS)
    await _serve(app, n)


def _per_request(key: str, n: int, pure: bool) -> float:
    return instructions_per("bench.requests", [key], n, pure=pure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="requests counted (default 2,000)")
    parser.add_argument("--child", nargs=2, metavar=("APP", "N"))
    args = parser.parse_args()
    if args.child:
        import uvloop  # noqa: PLC0415 -- the child's loop only

        key, n = args.child
        uvloop.run(_child(key, int(n)))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    cores = [False, True] if lightwork.compiled else [True]
    cells = [("plain", False), ("empty", False)] + [
        (key, pure) for key in APPS if key not in ("plain", "empty") for pure in cores
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(
            zip(cells, pool.map(lambda c: _per_request(c[0], args.n, c[1]), cells), strict=True)
        )
    plain = counts["plain", False]
    print(f"instructions per request, callgrind, in-process ASGI, uvloop, {args.n:,} requests")
    for key, pure in cells:
        label = APPS[key][0] + (
            "" if key in ("plain", "empty") else " (pure Python)" if pure else " (compiled)"
        )
        print(f"{label:<46}{counts[key, pure]:>9,.0f}  {plain / counts[key, pure]:4.2f}x")


if __name__ == "__main__":
    main()
