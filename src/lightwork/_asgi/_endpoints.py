"""What lightwork gives Starlette to call: the ``with_background`` decorator, the 503 handler.

Kept out of the compiled modules: Starlette looks at what it is given (``inspect.isfunction``
tells a function endpoint from an ASGI app, ``iscoroutinefunction`` an async handler), and
a function compiled by mypyc is neither.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse

from .._core._exceptions import BackgroundQueueFull
from ._background import Background, get_background

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request
    from starlette.responses import Response

C = TypeVar("C", bound=HTTPConnection)
R = TypeVar("R")


def with_background(endpoint: Callable[[C, Background], R]) -> Callable[[C], R]:
    """Hand a Starlette endpoint the request's background handle as its second argument.

    Works for async and sync endpoints, and for websocket endpoints.

    Example:
        ```python
        @with_background
        async def signup(request: Request, background: Background) -> Response:
            background.add_task(send_welcome_email, "ada@example.com")
            return Response(status_code=201)
        ```
    """
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def call_async(connection: C) -> Any:
            return await endpoint(connection, get_background(connection))

        return call_async  # type: ignore[return-value]

    @functools.wraps(endpoint)
    def call(connection: C) -> R:
        return endpoint(connection, get_background(connection))

    return call


async def queue_full_response(request: Request, exc: Exception) -> Response:
    """Answer ``BackgroundQueueFull`` with ``503 Service Unavailable`` and ``Retry-After``.

    Example:
        ```python
        app = Starlette(
            middleware=[Middleware(BackgroundMiddleware, scheduler=Scheduler(max_pending=1000))],
            exception_handlers={BackgroundQueueFull: queue_full_response},
        )
        ```
    """
    retry_after = exc.retry_after if isinstance(exc, BackgroundQueueFull) else 1
    return PlainTextResponse(
        "Too much background work is waiting; try again shortly.",
        status_code=503,
        headers={"Retry-After": str(retry_after)},
    )
