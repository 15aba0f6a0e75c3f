"""The request context: which request a log event, or a task, belongs to.

One context variable holds the request's ``Background`` while it runs, which says what log
events say of the request, and every task the request adds inherits it (each task runs in
a copy of the context that added it). The request's id is made the first time something
asks for it, a log event or ``current_request_id()``: a request that logs nothing costs
one variable set and reset, not three, and no id.
``add_log_fields`` puts the request's fields and the running task's in structlog's events.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Final

from .._core._monitor import running_handle

if TYPE_CHECKING:
    from structlog.typing import EventDict

    from ._background import Background

_REQUEST: Final[ContextVar[Background | None]] = ContextVar("lightwork_request", default=None)
# Its methods, bound once: compiled, a method called by name is looked up at each call.
_current_request: Final = _REQUEST.get
_set_request: Final = _REQUEST.set
_reset_request: Final = _REQUEST.reset


def bind_request(background: Background) -> Token[Background | None] | None:
    """Make *background*'s request the current one; return the undo, or ``None`` if one was.

    One bound around this request (by the ``BackgroundMiddleware`` of an app that mounts
    this one) is kept: one request, one id.
    """
    if _current_request() is not None:
        return None
    return _set_request(background)


def unbind_request(token: Token[Background | None]) -> None:
    """Undo ``bind_request``."""
    _reset_request(token)


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
    return None if request is None else request._request_id


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
            event_dict["request_id"] = request._request_id
        event_dict.setdefault("method", request._method)
        event_dict.setdefault("path", request._path)
    handle = running_handle()
    if handle is not None:
        event_dict.setdefault("task", handle.name)
        event_dict.setdefault("task_id", handle.id)
    return event_dict
