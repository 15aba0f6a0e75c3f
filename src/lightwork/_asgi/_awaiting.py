"""The ASGI layer's coroutines, besides the middleware's own: plain Python.

The middleware's coroutine is compiled, and its ``throw()`` throws into what it awaits,
which must be a coroutine (``_serving``): what it awaits but a request's app is here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Managed(Protocol):
    """A scheduler that runs with an app's lifespan (``Scheduler``)."""

    def start(self) -> Awaitable[None]: ...
    def aclose(self) -> Awaitable[None]: ...


async def pass_on(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, scheduler: Managed
) -> None:
    """What ``BackgroundMiddleware`` does with a scope that is not a request's.

    The lifespan's: *scheduler* starts with the app and, at shutdown, drains before the
    app's own shutdown code runs, so tasks can still use what the app's lifespan set up.
    Any other type goes to the app as it is.
    """
    if scope["type"] != "lifespan":
        await app(scope, receive, send)
        return

    async def receive_and_manage() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await scheduler.start()
        elif message["type"] == "lifespan.shutdown":
            await scheduler.aclose()
        return message

    await app(scope, receive_and_manage, send)


async def as_coroutine(awaitable: Awaitable[None]) -> None:
    """Await what an app returned that is not a coroutine (a compiled one, another awaitable)."""
    await awaitable
