"""``BackgroundMiddleware``: a pure ASGI middleware that gives every request a background handle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, get_args

from .._core._options import check_run_if
from .._core._types import RunIf, StartPolicy
from .._offload._scheduler import Scheduler
from ._response import RequestOpener
from ._serving import RequestServer

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from .._core._admission import Overflow


_START_POLICIES: Final = get_args(StartPolicy)


class BackgroundMiddleware(RequestServer):
    """Give each request a :class:`Background` handle, and run the app's scheduler.

    The handle is at :func:`get_background(request) <get_background>` and at
    ``request.state.background``. Tasks run detached: the response never waits for them,
    and neither does the next request on a keep-alive connection.

    The scheduler starts with the app's lifespan and, at shutdown, drains before the app's
    own shutdown code runs, so tasks can still use what the app's lifespan set up.

    Args:
        app: the ASGI app to wrap.
        scheduler: the scheduler to run tasks on; a default ``Scheduler()`` if not given.
        start: ``"after_response"`` (default) starts a request's tasks once its response is
            sent; ``"immediately"`` starts them as they are added, whatever ``run_if`` says.
            Websocket tasks always start immediately.
        run_if: which requests release their tasks: ``"no_exception"`` (default),
            ``"success"`` or ``"always"``; a task's own ``run_if`` wins.
        request_context: give each request a ``request_id`` (one the app binds in
            structlog's contextvars, else the ``X-Request-ID`` header, else a new one), with
            its ``method`` and ``path``, for the log events of the request and of the tasks it
            adds (through the ``add_log_fields`` processor) and ``current_request_id()``.
        max_concurrency: for the scheduler made here: tasks running at once (see
            ``Scheduler``); give your own ``Scheduler`` for every other setting.
        max_pending: for the scheduler made here: tasks waiting for a slot.
        overflow: for the scheduler made here: what a full queue does to ``add_task``.

    Example:
        ```python
        app = Starlette(
            routes=routes,
            middleware=[Middleware(BackgroundMiddleware, run_if="success")],
        )
        ```
    """

    def __init__(
        self,
        app: ASGIApp,
        scheduler: Scheduler | None = None,
        *,
        start: StartPolicy = "after_response",
        run_if: RunIf = "no_exception",
        request_context: bool = True,
        max_concurrency: int | None = None,
        max_pending: int | None = None,
        overflow: Overflow = "reject",
    ) -> None:
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise TypeError(f"scheduler must be a lightwork.Scheduler, not {scheduler!r}")
        limited = max_concurrency is not None or max_pending is not None or overflow != "reject"
        if scheduler is not None and limited:
            raise TypeError(
                "pass max_concurrency, max_pending and overflow to your Scheduler, "
                "not to BackgroundMiddleware, when you give it one"
            )
        if start not in _START_POLICIES:
            raise ValueError(
                f"start must be one of {', '.join(map(repr, _START_POLICIES))}, not {start!r}"
            )
        check_run_if(run_if)
        if scheduler is None:
            scheduler = Scheduler(
                max_concurrency=max_concurrency, max_pending=max_pending, overflow=overflow
            )
        opener = RequestOpener(
            scheduler, run_if, immediately=start == "immediately", bind=request_context
        )
        super().__init__(app, scheduler, opener)

    @property
    def start(self) -> StartPolicy:
        """When a request's tasks start: ``"after_response"`` or ``"immediately"``."""
        return "immediately" if self._requests._immediately else "after_response"

    @property
    def run_if(self) -> RunIf:
        """Which requests release their tasks, unless a task's own ``run_if`` says."""
        return self._requests._run_if

    @property
    def request_context(self) -> bool:
        """Whether each request is bound for its log events and its tasks'."""
        return self._requests._bind

    def __repr__(self) -> str:
        return f"<BackgroundMiddleware start={self.start!r} run_if={self.run_if!r}>"
