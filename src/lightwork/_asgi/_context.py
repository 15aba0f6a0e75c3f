"""The request context lightwork binds in structlog's contextvars, for requests and their tasks.

Bound in the request's own context, so the app's log events carry it too, and inherited by
every task the request adds (each task runs in a copy of the context that added it).
"""

from __future__ import annotations

from contextvars import Token
from random import getrandbits
from typing import TYPE_CHECKING, Any, Final

from .._core._logging import structlog_var

if TYPE_CHECKING:
    from starlette.types import Scope

REQUEST_ID_HEADER: Final = b"x-request-id"
_MAX_REQUEST_ID_LENGTH: Final = 128

REQUEST_ID_VAR: Final = structlog_var("request_id")
METHOD_VAR: Final = structlog_var("method")
PATH_VAR: Final = structlog_var("path")

_Tokens = tuple[Token[Any], ...]


def bind_request_context(scope: Scope) -> _Tokens:
    """Bind ``request_id``, ``method`` and ``path`` for this connection; return the undo.

    A ``request_id`` already bound around this request (by an outer ``BackgroundMiddleware``,
    of an app that mounts this one, or by the app's own middleware) is kept: one request,
    one id.
    """
    bound = REQUEST_ID_VAR.get()  # structlog's unbound value is Ellipsis
    return (
        REQUEST_ID_VAR.set(request_id(scope) if bound is ... or bound is None else bound),
        METHOD_VAR.set(scope.get("method", "WEBSOCKET")),
        PATH_VAR.set(scope["path"]),
    )


def unbind_request_context(tokens: _Tokens) -> None:
    """Restore what was bound before ``bind_request_context``."""
    request_id, method, path = tokens
    PATH_VAR.reset(path)
    METHOD_VAR.reset(method)
    REQUEST_ID_VAR.reset(request_id)


def request_id(scope: Scope) -> str:
    """Return the client's ``X-Request-ID`` when it is a sane one, else a new random id."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if 0 < len(value) <= _MAX_REQUEST_ID_LENGTH and value.isascii():
                text: str = value.decode("ascii")
                if text.isprintable():
                    return text
            break
    return getrandbits(64).to_bytes(8).hex()  # an id, not a secret: cheaper than os.urandom
