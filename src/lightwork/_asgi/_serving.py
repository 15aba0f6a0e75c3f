"""What the middleware's compiled request coroutine needs: a ``throw()`` and a ``close()``.

``BackgroundMiddleware.__call__``, compiled, is a compiled coroutine; see
``adopt_request_coroutines`` for what that asks. Also how the watchdog finds the route of
a request whose own code holds the loop (``_request_route``).
"""

from __future__ import annotations

import gc
import types
from typing import TYPE_CHECKING, Any, final

from .._core import _watchdog
from .._core._awaiting import adopt_driver
from .._core._monitor import thrown_exception
from ._background import SCOPE_KEY, Background
from ._response import ResponseWatch

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping
    from types import FrameType, TracebackType


@final
class PassedOn:
    """What the middleware's coroutine awaits for a scope that is not a request's."""

    __slots__ = ("awaited",)

    def __init__(self, awaited: Awaitable[None]) -> None:
        self.awaited = awaited


def _held(coro: object) -> tuple[ResponseWatch | None, Any]:
    """The request's watch, if any, and what a ``BackgroundMiddleware.__call__`` coroutine awaits.

    Among what it references, as the collector sees it: a compiled coroutine's locals cannot
    be read otherwise. Asked for on a throw or a close, never per request. Behind another
    ``BackgroundMiddleware``, the ``send`` it was given is that one's watch, which its own
    passes messages on to.
    """
    held = gc.get_referents(coro)
    for item in held:
        if isinstance(item, PassedOn):
            return None, item.awaited
    watches = [item for item in held if isinstance(item, ResponseWatch)]
    given = {id(watch._send) for watch in watches}
    for watch in watches:
        if id(watch) not in given:
            return watch, watch._awaited
    return None, None


def _throw_into_app(
    coro: object,
    typ: type[BaseException] | BaseException,
    val: object = None,
    tb: TracebackType | None = None,
) -> Any:
    """``throw()`` of the middleware's compiled coroutine: throw into what it awaits.

    With one argument. The coroutine stays where it waits, inside its ``await``: if the app
    goes on, its next step goes on with it; if the app ends, the request is closed here.
    """
    response, awaited = _held(coro)
    error = thrown_exception(typ, val, tb)
    if awaited is None:  # as a Python coroutine would
        if response is not None:  # the request is over
            raise RuntimeError("cannot reuse already awaited coroutine")
        raise error  # not started: it ends here
    try:
        return awaited.throw(error)
    except StopIteration:
        if response is not None:
            response.close(None)
        raise
    except BaseException as exc:
        if response is not None:
            response.close(exc)
        raise


def _close_app(coro: object) -> None:
    """``close()`` of the middleware's compiled coroutine: close what it awaits."""
    response, awaited = _held(coro)
    if awaited is None:
        return
    try:
        awaited.close()
    except BaseException as exc:
        if response is not None:
            response.close(exc)
        raise
    if response is not None:
        response.close(GeneratorExit())


def _request_route(frame: FrameType) -> str | None:
    """The route of the request whose ASGI scope a frame holds, if the middleware saw it.

    For the watchdog, on the loop thread's stack when it is stuck: whatever the middleware
    runs as, compiled or not, the app's own frames hold the scope.
    """
    if "scope" not in frame.f_code.co_varnames:  # most frames: their locals are not read
        return None
    # Not `.f_locals`: compiled, its value would be checked to be the dict typeshed says,
    # which a 3.13 frame's proxy is not.
    frame_locals: Mapping[str, Any] = getattr(frame, "f_locals")  # noqa: B009
    scope = frame_locals.get("scope")
    background = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return background._request_route if isinstance(background, Background) else None


def adopt_request_coroutines(middleware: Any) -> None:
    """Give *middleware*'s compiled coroutines a ``throw()`` and ``close()`` of lightwork's.

    Where a compiled coroutine awaits, mypyc forwards what is thrown into it (a cancellation)
    with ``throw(type, value, traceback)``, the form Python 3.12 deprecates; asyncio and the
    coroutine that awaits the middleware call ``throw()`` by name, so its class gets one that
    throws into the app with one argument, as the task driver's does (``_monitor.launch``).
    Interpreted, its coroutines are Python's own.
    """
    call = middleware.__call__
    if isinstance(call, types.FunctionType):  # interpreted
        return
    probe = call(middleware.__new__(middleware), {}, None, None)
    adopt_driver(type(probe), _throw_into_app, _close_app)
    probe.close()


_watchdog.request_routes.append(_request_route)
