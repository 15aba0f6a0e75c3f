"""The per-request ``Background`` handle, and the ways a handler gets hold of it."""

from __future__ import annotations

from random import getrandbits
from typing import TYPE_CHECKING, Any, Final, final

from .._core._handle import PENDING, TaskHandle
from .._core._logging import structlog_var
from .._offload._scheduler import OffloadingSource
from ._exceptions import BackgroundNotInstalledError

if TYPE_CHECKING:
    from contextvars import Token

    from starlette.requests import HTTPConnection
    from starlette.types import Scope

    from .._core._types import RunIf
    from .._offload._scheduler import Scheduler

SCOPE_KEY: Final = "lightwork.background"
REQUEST_ID_HEADER: Final = b"x-request-id"
_MAX_REQUEST_ID_LENGTH: Final = 128
_BOUND_REQUEST_ID: Final = structlog_var("request_id")
"""A ``request_id`` the app binds itself in structlog's contextvars: one request, one id."""


@final  # compiled, it cannot be subclassed
class Background(OffloadingSource):
    """The background handle of one request: ``add_task`` on it runs work after the response.

    Get it with :func:`get_background`, ``request.state.background``, the
    :func:`with_background` decorator or, in FastAPI, ``lightwork.fastapi.BackgroundDep``.
    Tasks added before the response is sent wait for it (unless the middleware says
    ``start="immediately"``); which requests release them is decided by ``run_if``.
    """

    # One per request, so slotted. It holds the pending tasks and what log events say of
    # the request (``add_log_fields``), never the request: a task that runs long after the
    # response keeps it alive, through the request context its task inherited.
    __slots__ = (
        "__scheduler",
        "_complete",
        "_error",
        "_headers",
        "_id",
        "_method",
        "_over",
        "_path",
        "_pending",
        "_released",
        "_route",
        "_run_if",
        "_status",
        "_unbind",
    )

    def __init__(
        self, scheduler: Scheduler, run_if: RunIf, scope: Scope, *, released: bool
    ) -> None:
        self.__scheduler = scheduler
        self._run_if: RunIf = run_if
        self._released = released
        self._pending: list[TaskHandle[Any]] | None = None  # made for a request's first task
        # Once the response is over (never, if tasks start at once: no response to wait
        # for): its status, the name of the exception the app raised, and whether the
        # response was sent in full. Slots, not a tuple: one object fewer a request.
        self._over = False
        self._status: int | None = None
        self._error: str | None = None
        self._complete = False
        # What undoes binding the request as the current one, for ResponseWatch.close().
        self._unbind: Token[Background | None] | None = None
        # `in` then `[]`: compiled, a mapping's `.get()` is a method call, and costs more.
        self._method: str = scope["method"] if "method" in scope else "WEBSOCKET"  # noqa: SIM401
        self._path: str = scope["path"]
        self._headers: Any = scope["headers"]  # only until the request's id is made
        self._id: str | None = None
        self._route: str | None = None

    def __repr__(self) -> str:
        pending = len(self._pending or ())
        return f"<Background pending={pending} released={self._released}>"

    @property
    def _scheduler(self) -> Scheduler:
        return self.__scheduler

    @property
    def scheduler(self) -> Scheduler:
        """The app's scheduler, for tasks that should not wait for this response."""
        return self.__scheduler

    @property
    def _request_id(self) -> str:
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
    def _request_route(self) -> str:
        """The request as ``"GET /path"``, for the handles of the tasks it adds."""
        route = self._route
        if route is None:
            route = self._route = f"{self._method} {self._path}"
        return route

    @property
    def _held_tasks(self) -> list[TaskHandle[Any]] | None:
        if self._released:
            return None
        if self._pending is None:
            self._pending = []
        return self._pending

    def _accept(self, handle: TaskHandle[Any]) -> None:
        handle.route = self._request_route
        if not self._released:
            self.__scheduler._hold(handle)  # keeps its room, or overflows now (may raise)
            if handle.state is PENDING:  # not dropped or offloaded by a full queue
                if self._pending is None:
                    self._pending = []
                self._pending.append(handle)
        elif not self._over or (refusal := self._refusal(handle)) is None:
            self.__scheduler._accept(handle)
        else:  # added after the response (a teardown's task), which decides as for the others
            self.__scheduler._drop(handle, refusal)

    def _release(self, status: int | None, error: BaseException | None, *, complete: bool) -> None:
        """Start or drop the waiting tasks, now that the response is over or the app failed.

        *complete* says whether the response's last body chunk was sent.
        """
        self._released = True
        self._over = True
        self._status = status
        self._error = None if error is None else type(error).__name__
        self._complete = complete
        pending, self._pending = self._pending, None
        if pending is None:  # most requests add no task
            return
        scheduler = self.__scheduler
        for handle in pending:
            if handle.state is not PENDING:
                continue
            refusal = self._refusal(handle)
            if refusal is None:
                scheduler._release(handle)
            else:
                scheduler._drop(handle, refusal)

    def _refusal(self, handle: TaskHandle[Any]) -> str | None:
        """Say why the request's outcome keeps *handle* from running, or ``None`` if it runs."""
        status, error = self._status, self._error
        run_if = handle._run_if or self._run_if
        if run_if == "always":
            return None
        if error is not None:
            return f"the request raised {error}"
        if run_if == "no_exception":
            return None
        if status is None:
            return f"no response was sent (run_if={run_if!r})"
        if status >= 400:
            return f"the response status was {status} (run_if={run_if!r})"
        if not self._complete:
            return f"the response was cut off before its end (run_if={run_if!r})"
        return None


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


def get_background(connection: HTTPConnection) -> Background:
    """Return the background handle of this request or websocket.

    Raises:
        BackgroundNotInstalledError: ``BackgroundMiddleware`` is not in the app's middleware.

    Example:
        ```python
        async def signup(request: Request) -> Response:
            get_background(request).add_task(send_welcome_email, "ada@example.com")
            return Response(status_code=201)
        ```
    """
    try:
        background: Background = connection.scope[SCOPE_KEY]
    except KeyError:
        raise BackgroundNotInstalledError(
            "this request has no lightwork background handle: add "
            "`Middleware(lightwork.BackgroundMiddleware)` to the app's middleware"
        ) from None
    return background
