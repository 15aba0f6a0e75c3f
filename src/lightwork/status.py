"""A live status page of background tasks: opt-in, mounted where you choose, behind your check.

Nothing is exposed unless you mount it. The page and its JSON show task names, routes
and timings, so :func:`status_app` refuses to be made without a ``check`` that decides,
per request, who may see them.

Example:
    ```python
    from lightwork.status import status_app


    def is_admin(request: Request) -> bool:
        return request.headers.get("x-admin-token") == settings.admin_token


    app = Starlette(
        routes=[Mount("/_lightwork", status_app(check=is_admin))],
        middleware=[Middleware(lightwork.BackgroundMiddleware)],
    )
    ```

``GET /_lightwork/`` is a self-contained HTML page (no external assets) that refreshes
itself; ``GET /_lightwork/stats.json`` is ``Scheduler.stats()`` as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
from importlib.resources import files
from typing import TYPE_CHECKING, Final, TypeAlias

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, Router

from ._asgi._background import get_background
from ._core._options import check_duration

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from ._offload._scheduler import Scheduler

__all__ = ["StatusCheck", "status_app"]

StatusCheck: TypeAlias = "Callable[[Request], bool | Awaitable[bool]]"
"""Decides whether a request may see the status page: returns (or resolves to) ``True``."""

_ASSETS: Final = files("lightwork") / "_status_assets"
_SCRIPT: Final = (_ASSETS / "page.js").read_text(encoding="utf-8")
_STYLE: Final = (_ASSETS / "page.css").read_text(encoding="utf-8")


def _source_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# The page may run its own inline script and style and fetch from its own origin: nothing else.
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{_source_hash(_SCRIPT)}'; "
        f"style-src '{_source_hash(_STYLE)}'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_JSON_HEADERS: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def status_app(
    *, check: StatusCheck, scheduler: Scheduler | None = None, refresh_s: float = 2.0
) -> Router:
    """Make the status page's ASGI app, to mount at a path of your choice.

    Args:
        check: called with each request; only when it returns ``True`` (or an awaitable of
            ``True``) is the request answered, else it gets a 403. It may also raise
            Starlette's ``HTTPException``, say a 401 that asks for credentials.
        scheduler: the scheduler to show; by default the one of the app's
            ``BackgroundMiddleware``, found from each request.
        refresh_s: seconds between the page's fetches of ``stats.json``.

    Raises:
        TypeError: ``check`` is not callable.
        ValueError: ``refresh_s`` is not a positive number.
    """
    if not callable(check):
        raise TypeError(
            "status_app needs check=, a function that takes the Request and returns True "
            f"when it may see task names, routes and timings, not {check!r}"
        )
    check_duration("refresh_s", refresh_s, allow_none=False)
    page = _PAGE.format(refresh_ms=round(refresh_s * 1000), style=_STYLE, script=_SCRIPT)

    async def allowed(request: Request) -> bool:
        verdict = check(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict is True

    async def show_page(request: Request) -> Response:
        if not await allowed(request):
            return Response("Forbidden", status_code=403, headers=_JSON_HEADERS)
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    async def show_stats(request: Request) -> Response:
        if not await allowed(request):
            return JSONResponse({"error": "forbidden"}, status_code=403, headers=_JSON_HEADERS)
        shown = scheduler if scheduler is not None else get_background(request).scheduler
        return JSONResponse(shown.stats(), headers=_JSON_HEADERS)

    return Router(
        routes=[
            Route("/", show_page, methods=["GET"]),
            Route("/stats.json", show_stats, methods=["GET"]),
        ]
    )


_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lightwork: background tasks</title>
<style>{style}</style>
</head>
<body data-refresh-ms="{refresh_ms}">
<header><h1>Background tasks</h1><p id="updated" role="status">Loading&hellip;</p></header>
<section><h2>Totals</h2><dl id="totals"></dl></section>
<section><h2>Running now</h2><table id="running"><thead><tr>
<th>id</th><th>task</th><th>state</th><th>running for</th><th>held the loop</th><th>route</th>
</tr></thead><tbody></tbody></table></section>
<section><h2>Slowest</h2><table id="slowest"><thead><tr>
<th>task</th><th>mean</th><th>longest</th><th>ended</th><th>slow warnings</th>
</tr></thead><tbody></tbody></table></section>
<section><h2>Most blocking</h2><table id="blocking"><thead><tr>
<th>task</th><th>held the loop, in all</th><th>most by one task</th><th>blocking warnings</th>
</tr></thead><tbody></tbody></table></section>
<section><h2>By task</h2><table id="tasks"><thead><tr>
<th>task</th><th>scheduled</th><th>queued</th><th>running</th><th>completed</th><th>failed</th>
<th>timed out</th><th>cancelled</th><th>dropped</th><th>offloaded</th>
</tr></thead><tbody></tbody></table></section>
<script>{script}</script>
</body>
</html>
"""
