"""A request's life in the middleware: ``RequestOpener.open``, then ``ResponseWatch``.

``ResponseWatch`` is the ``send`` an app gets when its request's tasks wait for the
response; its ``close()`` settles it, and the request, when the app returns or raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

from .._core import _awaiting
from ._background import SCOPE_KEY, Background
from ._context import bind_request, unbind_request

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

    __slots__ = ("_awaited", "_background", "_send", "_watched", "complete", "status")

    def __init__(self, send: Send, background: Background, *, watched: bool) -> None:
        self._send = send
        self._background = background
        self._watched = watched
        # The app's coroutine, while the middleware's awaits it: for its throw() and close().
        self._awaited: Any = None
        self.status: int | None = None
        self.complete = False

    @property
    def app_send(self) -> Send:
        """The ``send`` to give the app: this watch, or the server's if nothing waits for it."""
        return self if self._watched else self._send

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

    def close(self, error: BaseException | None) -> None:
        """The app returned, or raised *error*: settle what the response did not, and unbind.

        A 5xx or a cut-off response leaves the request's tasks to be released here.
        """
        self._awaited = None  # the app's coroutine holds this watch, as its `send`
        background = self._background
        if not background._released:
            background._release(self.status, error, complete=self.complete)
        if background._unbind is not None:
            unbind_request(background._unbind)
            background._unbind = None


@final
class RequestOpener:
    """What the middleware decided for every request, and the one call that opens each.

    One call from the middleware's coroutine for all of a request's setting up, with what
    it decided kept here: interpreted (as plain Python), each argument it passed would be a
    look-up on every request.
    """

    __slots__ = ("_bind", "_immediately", "_run_if", "_scheduler")

    def __init__(
        self, scheduler: Scheduler, run_if: RunIf, *, immediately: bool, bind: bool
    ) -> None:
        self._scheduler = scheduler
        self._run_if: RunIf = run_if
        self._immediately = immediately
        self._bind = bind

    def open(self, scope: Scope, send: Send) -> ResponseWatch | None:
        """Make a request's ``Background``, put it where its handlers find it, watch *send*.

        ``None`` if *scope* is not a request or a websocket. The ``Background`` goes at
        ``scope["lightwork.background"]`` and in the request's state, which the ASGI spec
        has servers copy from the lifespan state for each request: no copy here. The
        request is the current one (for its log events) until ``ResponseWatch.close``.
        """
        kind: str = scope["type"]
        if kind == "http":
            released = self._immediately
        elif kind == "websocket":  # no response to wait for: its tasks start at once
            released = True
        else:
            return None
        background = Background(self._scheduler, self._run_if, scope, released=released)
        if self._bind:
            background._unbind = bind_request(background)
        scope[SCOPE_KEY] = background
        if "state" in scope:  # `in` then `[]`: compiled, `.get()` is a method call
            scope["state"]["background"] = background
        else:
            scope["state"] = {"background": background}
        return ResponseWatch(send, background, watched=not released)
