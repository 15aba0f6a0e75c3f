"""Instructions per request, counted by callgrind: what ``BackgroundMiddleware`` adds.

Run ``python -m bench.requests`` (valgrind needed; about a minute). A plain Starlette
endpoint is called in-process, through ASGI alone (no server, no socket, no client), without
the middleware, behind an empty pure ASGI middleware (the least any middleware adds), with
it, and with it but ``request_context=False``; and a bare ``create_task`` endpoint beside one
that adds a lightwork task, each request followed by one turn of the loop for its no-op task
to run (their ratio is the task endpoint target's, without the server); each app runs twice under
callgrind, with a warm-up only and with N more requests, and the difference over N is its
instructions per request. The ratio is the plain endpoint's count over the app's: the figure
that issue 15's "0.95x of the endpoint without it" target reads, without the server's share,
which the HTTP part measures. The middleware runs compiled (when the install built it) and
pure (``LIGHTWORK_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import argparse
import asyncio
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

from ._runtime import configure_logging
from .instructions import instructions_per

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

WARM_UP_REQUESTS: Final = 200
APPS: Final[dict[str, tuple[str, list[dict[str, Any]]]]] = {
    "plain": ("plain endpoint", []),
    "empty": ("plain + an empty ASGI middleware", []),
    "middleware": ("plain + BackgroundMiddleware", [{}]),
    "no_context": ("... with request_context=False", [{"request_context": False}]),
    "bare_task": ("bare create_task endpoint", []),
    "task": ("lightwork add_task endpoint", [{}]),
}
"""Each app: its label, and the options of each ``BackgroundMiddleware`` it is wrapped in."""
WITHOUT_LIGHTWORK: Final = ("plain", "empty", "bare_task")
"""The apps with no lightwork in them: one build is enough."""
TASK_APPS: Final = ("bare_task", "task")
"""The apps whose endpoint starts a no-op task: each request is followed by one turn of the
loop, in which the task runs; their ratio is the lightwork one's to the bare one's."""
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


async def _noop() -> None:
    pass


_tasks: set[asyncio.Task[None]] = set()


async def _bare_task(request: Request) -> PlainTextResponse:
    task = asyncio.get_running_loop().create_task(_noop())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return PlainTextResponse("ok")


async def _lightwork_task(request: Request) -> PlainTextResponse:
    lightwork.get_background(request).add_task(_noop)
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
    endpoint = {"bare_task": _bare_task, "task": _lightwork_task}.get(key, _plain)
    return Starlette(routes=[Route("/", endpoint)], middleware=stack)


async def _serve(app: ASGIApp, n: int, *, turn: bool) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    for _ in range(n):
        await app(dict(_SCOPE), receive, send)
        if turn:
            await asyncio.sleep(0)


async def _child(key: str, n: int) -> None:
    configure_logging()  # INFO, as in production: no per-task debug event
    app = _app(key)
    turn = key in TASK_APPS
    await _serve(app, WARM_UP_REQUESTS, turn=turn)
    await _serve(app, n, turn=turn)


def run_child(
    child: list[str] | None, serve: Callable[[str, int], Coroutine[Any, Any, None]]
) -> bool:
    """Serve *child*'s app (its key and N) on uvloop and say so; or check valgrind is there."""
    if child:
        import uvloop  # noqa: PLC0415 -- the child's loop only

        key, n = child
        uvloop.run(serve(key, int(n)))
        return True
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    return False


def count_apps(module: str, keys: Iterable[str], n: int) -> dict[tuple[str, bool], float]:
    """Count the instructions a request of each app of *keys*, and of its anchor, costs.

    With ``python -m <module> --child APP N``; each lightwork app compiled (when the install
    built it) and pure, in ``APPS``' order; keyed by app and whether it ran pure.
    """
    chosen = set(keys) | {"bare_task" if key in TASK_APPS else "plain" for key in keys}
    cores = [False, True] if lightwork.compiled else [True]
    cells = [
        (key, pure)
        for key in APPS
        if key in chosen
        for pure in ([False] if key in WITHOUT_LIGHTWORK else cores)
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = pool.map(lambda c: instructions_per(module, [c[0]], n, pure=c[1]), cells)
        return dict(zip(cells, counted, strict=True))


def print_counts(title: str, task_heading: str, counts: dict[tuple[str, bool], float]) -> None:
    """Print each app's count and its ratio to its anchor's."""
    print(title)
    for (key, pure), count in counts.items():
        if key == "bare_task":
            print(task_heading)
        anchor = counts["bare_task" if key in TASK_APPS else "plain", False]
        build = "" if key in WITHOUT_LIGHTWORK else " (pure Python)" if pure else " (compiled)"
        print(f"{APPS[key][0] + build:<46}{count:>9,.0f}  {anchor / count:5.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="requests counted (default 2,000)")
    parser.add_argument("--child", nargs=2, metavar=("APP", "N"))
    args = parser.parse_args()
    if run_child(args.child, _child):
        return
    counts = count_apps("bench.requests", APPS, args.n)
    print_counts(
        f"instructions per request, callgrind, in-process ASGI, uvloop, {args.n:,} requests",
        "with a no-op task, and a turn of the loop after each request:",
        counts,
    )


if __name__ == "__main__":
    main()
