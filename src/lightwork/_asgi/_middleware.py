"""``BackgroundMiddleware``: a pure ASGI middleware that gives every request a background handle.

Compiled: Starlette and the server call it through its vectorcall slot (an interpreted
class's instance is called through its type's ``__call__``, a method made and bound per
request), and its ``__call__`` is a compiled coroutine, which a request pays less for than
an interpreted one's frame; ``_serving`` gives that coroutine its ``throw()`` and
``close()``.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Final, get_args

from mypy_extensions import mypyc_attr

from .._core._options import check_flag, check_run_if
from .._core._types import RunIf, StartPolicy
from .._offload._scheduler import Scheduler
from ._awaiting import as_coroutine, pass_on
from ._response import RequestOpener
from ._serving import PassedOn, adopt_request_coroutines

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from .._core._admission import Overflow


_START_POLICIES: Final = get_args(StartPolicy)
_COROUTINE: Final = types.CoroutineType  # compiled, a C static: no look-up in `types`


@mypyc_attr(allow_interpreted_subclasses=True)
class BackgroundMiddleware:
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
        _check_types(scheduler=scheduler, start=start, run_if=run_if, context=request_context)
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
        self.app = app
        self.scheduler = scheduler
        self._requests = RequestOpener(
            scheduler, run_if, immediately=start == "immediately", bind=request_context
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Every request runs in this coroutine. Compiled, its throw() and close() find what it
        # awaits in what it holds (see _serving._held).
        response = self._requests.open(scope, send)
        if response is None:  # not a request: the lifespan's, or a type passed on
            passing = PassedOn(pass_on(self.app, scope, receive, send, self.scheduler))
            await passing.awaited
            return
        awaited = self.app(scope, receive, response.app_send)
        if type(awaited) is not _COROUTINE:  # so that throw() can throw into it
            awaited = as_coroutine(awaited)
        response._awaited = awaited
        try:
            await awaited
        except BaseException as exc:
            response.close(exc)
            raise
        response.close(None)

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


def _check_types(*, scheduler: object, start: object, run_if: object, context: object) -> None:
    """Refuse an option of the wrong type with a ``TypeError``, as plain Python.

    Compiled, mypyc's own check of ``__init__``'s arguments refuses it first, with the same
    ``TypeError`` and its own message ("str object expected; got None"), as it does for
    ``Scheduler``'s options.
    """
    if scheduler is not None and not isinstance(scheduler, Scheduler):
        raise TypeError(f"scheduler must be a lightwork.Scheduler, not {scheduler!r}")
    for option, value in (("start", start), ("run_if", run_if)):
        if not isinstance(value, str):
            raise TypeError(f"{option} must be a str, not {value!r}")
    check_flag("request_context", context)


adopt_request_coroutines(BackgroundMiddleware)
