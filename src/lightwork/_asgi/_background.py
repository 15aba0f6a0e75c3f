"""The per-request ``Background`` handle, and the ways a handler gets hold of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

from .._core._handle import PENDING, TaskHandle
from .._offload._scheduler import OffloadingSource
from ._exceptions import BackgroundNotInstalledError

if TYPE_CHECKING:
    from contextvars import Token

    from starlette.requests import HTTPConnection

    from .._core._types import RunIf
    from .._offload._scheduler import Scheduler
    from ._context import RequestInfo

SCOPE_KEY: Final = "lightwork.background"


@final  # compiled, it cannot be subclassed
class Background(OffloadingSource):
    """The background handle of one request: ``add_task`` on it runs work after the response.

    Get it with :func:`get_background`, ``request.state.background``, the
    :func:`with_background` decorator or, in FastAPI, ``lightwork.fastapi.BackgroundDep``.
    Tasks added before the response is sent wait for it (unless the middleware says
    ``start="immediately"``); which requests release them is decided by ``run_if``.
    """

    # One per request, so slotted; it holds the pending tasks, never the request.
    __slots__ = (
        "__scheduler",
        "_outcome",
        "_pending",
        "_released",
        "_request",
        "_run_if",
        "_unbind",
    )

    def __init__(
        self, scheduler: Scheduler, run_if: RunIf, request: RequestInfo, *, released: bool
    ) -> None:
        self.__scheduler = scheduler
        self._run_if: RunIf = run_if
        self._request = request
        self._released = released
        self._pending: list[TaskHandle[Any]] | None = None  # made for a request's first task
        # Once the response is over: its status, the name of the exception the app raised,
        # and whether the response was sent in full. None while it runs, or if tasks start
        # at once (no response to wait for).
        self._outcome: tuple[int | None, str | None, bool] | None = None
        # What undoes binding the request as the current one, for ResponseWatch.close().
        self._unbind: Token[RequestInfo | None] | None = None

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
    def _held_tasks(self) -> list[TaskHandle[Any]] | None:
        if self._released:
            return None
        if self._pending is None:
            self._pending = []
        return self._pending

    def _accept(self, handle: TaskHandle[Any]) -> None:
        handle.route = self._request.route
        if not self._released:
            self.__scheduler._hold(handle)  # keeps its room, or overflows now (may raise)
            if handle.state is PENDING:  # not dropped or offloaded by a full queue
                if self._pending is None:
                    self._pending = []
                self._pending.append(handle)
        elif self._outcome is None or (refusal := self._refusal(handle)) is None:
            self.__scheduler._accept(handle)
        else:  # added after the response (a teardown's task), which decides as for the others
            self.__scheduler._drop(handle, refusal)

    def _release(self, status: int | None, error: BaseException | None, *, complete: bool) -> None:
        """Start or drop the waiting tasks, now that the response is over or the app failed.

        *complete* says whether the response's last body chunk was sent.
        """
        self._released = True
        self._outcome = (status, None if error is None else type(error).__name__, complete)
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
        assert self._outcome is not None
        status, error, complete = self._outcome
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
        if not complete:
            return f"the response was cut off before its end (run_if={run_if!r})"
        return None


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
