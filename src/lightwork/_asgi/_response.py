"""A request's life in the middleware: ``open_request``, ``ResponseWatch``, ``close_request``.

``ResponseWatch`` is the ``send`` an app gets when its request's tasks wait for the
response; ``close_request`` settles it, and the request, when the app returns or raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

from .._core import _awaiting
from ._background import SCOPE_KEY, Background
from ._context import RequestInfo, bind_request, unbind_request

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from starlette.types import Message, Scope, Send

    from .._core._types import RunIf
    from .._offload._scheduler import Scheduler

_then: Final = _awaiting.then  # a C static, compiled: no look-up in the module's dict


@final
class ResponseWatch:
    """Pass each message on to the server, and release the request's tasks once it is sent.

    A plain callable, not a coroutine: every message but the last goes straight to the
    server's ``send``, so the app awaits the server's coroutine itself; only the last one is
    awaited here, to release the tasks after it, and only if the request holds some.
    """

    __slots__ = ("_background", "_send", "complete", "status")

    def __init__(self, send: Send, background: Background) -> None:
        self._send = send
        self._background = background
        self.status: int | None = None
        self.complete = False

    def __call__(self, message: Message) -> Awaitable[None]:
        # Typed, and `in` then `[]`: compiled, a str compares natively, and a mapping's
        # `.get()` is a method call, which costs more.
        kind: str = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif (
            kind == "http.response.body" and not ("more_body" in message and message["more_body"])  # noqa: RUF019
        ) or kind == "http.response.pathsend":
            if self._background._pending is None:
                # No task waits for this response (most requests): nothing to release after
                # it, so it need not be awaited here (a coroutine, 1,900 instructions). A task
                # added from now on starts at once, as if the response had gone out in full.
                self._sent()
            else:
                return _then(self._send(message), self._sent)
        return self._send(message)

    def _sent(self) -> None:
        self.complete = True
        # A 5xx may be an exception on its way out (a mounted app's error middleware answers,
        # then raises it again): decided when the app returns or raises.
        if (self.status or 500) < 500:
            self._background._release(self.status, None, complete=True)

    def request_ended(self, error: BaseException | None) -> None:
        """The app returned or raised: release what the response did not (a 5xx, a cut-off)."""
        if not self._background._released:
            self._background._release(self.status, error, complete=self.complete)


def open_request(
    scope: Scope, send: Send, scheduler: Scheduler, run_if: RunIf, released: bool, bind: bool
) -> ResponseWatch:
    """Make a request's ``Background``, put it where its handlers find it, and watch *send*.

    At ``scope["lightwork.background"]`` and in the request's state, which the ASGI spec has
    servers copy from the lifespan state for each request: no copy here. With *bind*, the
    request is the current one (for its log events) until ``close_request``. The app gets
    the watch as its ``send`` unless the request's tasks are *released* at once. One call
    from the middleware's coroutine for all of it: each call from interpreted code into
    compiled code costs a few hundred instructions, on every request.
    """
    request = RequestInfo(scope)
    background = Background(scheduler, run_if, request, released=released)
    if bind:
        background._unbind = bind_request(request)
    scope[SCOPE_KEY] = background
    if "state" in scope:  # `in` then `[]`: compiled, `.get()` is a method call
        scope["state"]["background"] = background
    else:
        scope["state"] = {"background": background}
    return ResponseWatch(send, background)


def close_request(response: ResponseWatch, error: BaseException | None) -> None:
    """The app has returned, or raised *error*: settle what the response did not, and unbind."""
    response.request_ended(error)
    background = response._background
    if background._unbind is not None:
        unbind_request(background._unbind)
        background._unbind = None
