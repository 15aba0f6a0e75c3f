"""The request context: which request a log event, or a task, belongs to.

One context variable holds the request's ``RequestInfo`` while it runs, and every task the
request adds inherits it (each task runs in a copy of the context that added it). Its id is
made the first time something asks for it, a log event or ``current_request_id()``: a
request that logs nothing costs one variable set and reset, not three, and no id.
``add_log_fields`` puts the request's fields and the running task's in structlog's events.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from random import getrandbits
from typing import TYPE_CHECKING, Any, Final, final

from .._core._logging import structlog_var
from .._core._monitor import running_handle

if TYPE_CHECKING:
    from starlette.types import Scope
    from structlog.typing import EventDict

REQUEST_ID_HEADER: Final = b"x-request-id"
_MAX_REQUEST_ID_LENGTH: Final = 128

_REQUEST: Final[ContextVar[RequestInfo | None]] = ContextVar("lightwork_request", default=None)
# Its methods, bound once: compiled, a method called by name is looked up at each call.
_current_request: Final = _REQUEST.get
_set_request: Final = _REQUEST.set
_reset_request: Final = _REQUEST.reset
_BOUND_REQUEST_ID: Final = structlog_var("request_id")
"""A ``request_id`` the app binds itself in structlog's contextvars: one request, one id."""


@final
class RequestInfo:
    """What log events say of a request: ``request_id``, ``method`` and ``path``.

    Holds the request's headers only until its id is made, and nothing else of it: a task
    that runs long after the response keeps this alive, not the request.
    """

    __slots__ = ("_headers", "_id", "_route", "method", "path")

    def __init__(self, scope: Scope) -> None:
        # `in` then `[]`: compiled, a mapping's `.get()` is a method call, and costs more.
        self.method: str = scope["method"] if "method" in scope else "WEBSOCKET"  # noqa: SIM401
        self.path: str = scope["path"]
        self._headers: Any = scope["headers"]
        self._id: str | None = None
        self._route: str | None = None

    @property
    def id(self) -> str:
        """The request's id, made when first asked for (see ``make_request_id``)."""
        made = self._id
        if made is None:
            made = make_request_id(self._headers)
            if self._id is None:  # a sync task's thread may have made it meanwhile
                self._id = made
                self._headers = None
            made = self._id
        return made

    @property
    def route(self) -> str:
        """The request as ``"GET /path"``, for the handles of the tasks it adds."""
        route = self._route
        if route is None:
            route = self._route = f"{self.method} {self.path}"
        return route


def bind_request(request: RequestInfo) -> Token[RequestInfo | None] | None:
    """Make *request* the current one; return the undo, or ``None`` if one was already bound.

    One bound around this request (by the ``BackgroundMiddleware`` of an app that mounts
    this one) is kept: one request, one id.
    """
    if _current_request() is not None:
        return None
    return _set_request(request)


def unbind_request(token: Token[RequestInfo | None]) -> None:
    """Undo ``bind_request``."""
    _reset_request(token)


def make_request_id(headers: Any) -> str:
    """Return the id of a request whose id was asked for.

    The ``request_id`` the app bound in structlog's contextvars, if any; else the client's
    ``X-Request-ID`` when it is a sane one; else a new random id.
    """
    bound = _BOUND_REQUEST_ID.get()  # structlog's unbound value is Ellipsis
    if bound is not ... and bound is not None:
        return str(bound)
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if 0 < len(value) <= _MAX_REQUEST_ID_LENGTH and value.isascii():
                text: str = value.decode("ascii")
                if text.isprintable():
                    return text
            break
    return f"{getrandbits(64):016x}"  # an id, not a secret: cheaper than os.urandom


def current_request_id() -> str | None:
    """Return the id of the request this code runs for, or ``None`` outside requests.

    The same id as in the log events of the request and of its tasks (see
    ``BackgroundMiddleware(request_context=...)``): inside a task, the id of the request
    that added it, even long after the response.

    Example:
        ```python
        async def place_order(request: Request) -> Response:
            ...
            return JSONResponse(order, headers={"X-Request-ID": current_request_id()})
        ```
    """
    request = _current_request()
    return None if request is None else request.id


def add_log_fields(logger: object, method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: the request's and the task's fields on every event logged there.

    ``request_id``, ``method`` and ``path`` on the events logged for a request and by the
    tasks it added (with ``BackgroundMiddleware(request_context=True)``, the default);
    ``task`` and ``task_id`` on those logged inside a task (or a sync task's thread). Both
    are looked up as an event is logged: nothing is bound per task, and a request's id is
    only made if something logs. Fields already in the event win.

    Example:
        ```python
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                lightwork.add_log_fields,
                structlog.processors.add_log_level,
                structlog.dev.ConsoleRenderer(),
            ]
        )
        ```
    """
    request = _current_request()
    if request is not None:
        if "request_id" not in event_dict:
            event_dict["request_id"] = request.id
        event_dict.setdefault("method", request.method)
        event_dict.setdefault("path", request.path)
    handle = running_handle()
    if handle is not None:
        event_dict.setdefault("task", handle.name)
        event_dict.setdefault("task_id", handle.id)
    return event_dict
