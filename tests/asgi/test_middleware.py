"""BackgroundMiddleware in a real Starlette app: detached tasks, run_if, lifespan and handles."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import weakref
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

import lightwork
from lightwork import Background, BackgroundMiddleware, Scheduler, TaskState
from lightwork.testing import TaskRecorder
from tests.support import events, spin

Logs = list[MutableMapping[str, Any]]


def make_app(*routes: BaseRoute, **options: Any) -> Starlette:
    return Starlette(routes=list(routes), middleware=[Middleware(BackgroundMiddleware, **options)])


def test_the_response_does_not_wait_for_its_task(
    anyio_backend_options: dict[str, Any], lightwork_tasks: TaskRecorder
) -> None:
    response_received = threading.Event()

    async def wait_for_the_client() -> str:
        # If the response waited for this task, the client would never get it and this
        # wait would time out; the task would then end as failed, not completed.
        if not await asyncio.to_thread(response_received.wait, 5):
            raise AssertionError("the response was held back by its background task")
        return "sent after the response"

    async def endpoint(request: Request) -> Response:
        lightwork.get_background(request).add_task(wait_for_the_client)
        return PlainTextResponse("at once")

    app = make_app(Route("/", endpoint))
    with TestClient(app, backend_options=anyio_backend_options) as client:
        assert client.get("/").text == "at once"
        response_received.set()
        lightwork_tasks.wait()
    [handle] = lightwork_tasks.tasks
    assert handle.result() == "sent after the response"


async def test_tasks_start_only_after_the_final_body_is_sent() -> None:
    sent: list[Message] = []
    seen_at_start: list[int] = []

    async def note_sent_messages() -> None:
        seen_at_start.append(len(sent))

    async def endpoint(request: Request) -> Response:
        request.state.background.add_task(note_sent_messages)
        return PlainTextResponse("body")

    app = make_app(Route("/", endpoint))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    with TaskRecorder() as recorder:
        await app(scope, receive, send)
        await recorder.join()
    assert seen_at_start == [2]  # http.response.start and the final http.response.body


def held_task_app(
    held: list[lightwork.TaskHandle[Any]],
    entered: asyncio.Event,
    request_ids: list[str | None],
    *,
    nested: bool = False,
) -> BackgroundMiddleware:
    """A middleware around an app that adds a task, then waits (to be cancelled or closed).

    *nested*: around another middleware, whose coroutine, compiled, is not a Python one.
    """

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        held.append(scope["lightwork.background"].add_task(asyncio.sleep(0), name="held"))
        request_ids.append(lightwork.current_request_id())
        entered.set()
        await asyncio.sleep(10)

    return BackgroundMiddleware(BackgroundMiddleware(inner) if nested else inner)


HTTP_SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}


async def nothing_received() -> Message:
    return {"type": "http.request", "body": b""}


async def nothing_sent(message: Message) -> None:
    pass


@pytest.mark.parametrize("nested", [False, True])
async def test_a_request_cancelled_while_its_app_waits_drops_its_tasks_once(
    logs: Logs, nested: bool
) -> None:
    held: list[lightwork.TaskHandle[Any]] = []
    entered = asyncio.Event()
    request_ids: list[str | None] = []
    middleware = held_task_app(held, entered, request_ids, nested=nested)

    after: list[str | None] = []

    async def request() -> None:
        try:
            await middleware(dict(HTTP_SCOPE), nothing_received, nothing_sent)
        finally:  # in the request's own context, once the middleware let go of it
            after.append(lightwork.current_request_id())

    serving = asyncio.create_task(request())
    await asyncio.wait_for(entered.wait(), 5)
    serving.cancel()  # thrown into the middleware's coroutine, compiled or not
    with pytest.raises(asyncio.CancelledError):
        await serving
    [handle] = held
    assert handle.state is TaskState.DROPPED
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["reason"] == "the request raised CancelledError"
    assert request_ids[0] is not None
    assert after == [None]  # bound while the app ran, unbound once it was cancelled
    await middleware.scheduler.aclose()


async def test_a_request_coroutine_closed_while_its_app_waits_drops_its_tasks(logs: Logs) -> None:
    held: list[lightwork.TaskHandle[Any]] = []
    entered = asyncio.Event()
    middleware = held_task_app(held, entered, [])
    coro = middleware(dict(HTTP_SCOPE), nothing_received, nothing_sent)
    waiting = coro.send(None)  # up to the app's sleep
    assert entered.is_set()
    coro.close()
    coro.close()  # a second close finds nothing to do
    [handle] = held
    assert handle.state is TaskState.DROPPED
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["reason"] == "the request raised GeneratorExit"
    assert isinstance(waiting, asyncio.Future)
    await middleware.scheduler.aclose()


async def test_a_request_whose_app_ends_on_a_thrown_exception_releases_its_tasks(
    lightwork_tasks: TaskRecorder,
) -> None:
    """An app that catches what is thrown in and returns: a normal end, reached in throw()."""

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        scope["lightwork.background"].add_task(asyncio.sleep(0), name="released")
        try:
            await asyncio.sleep(10)
        except ValueError:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"caught"})

    middleware = BackgroundMiddleware(inner, start="immediately")
    coro = middleware(dict(HTTP_SCOPE), nothing_received, nothing_sent)
    coro.send(None)
    with pytest.raises(StopIteration):
        coro.throw(ValueError("wake up"))
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        coro.throw(KeyError("late"))  # ended, as a Python coroutine would say
    await lightwork_tasks.join()
    assert [h.state for h in lightwork_tasks.tasks] == [TaskState.COMPLETED]
    await middleware.scheduler.aclose()


async def test_start_immediately_runs_tasks_while_the_handler_is_still_working() -> None:
    async def endpoint(request: Request) -> Response:
        started = asyncio.Event()

        async def signal() -> None:
            started.set()

        lightwork.get_background(request).add_task(signal)
        await asyncio.wait_for(started.wait(), 5)  # would time out with "after_response"
        return PlainTextResponse("started first")

    app = make_app(Route("/", endpoint), start="immediately")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.get("/")).text == "started first"


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def noop() -> None:
    pass


def run_if_app(**options: Any) -> Starlette:
    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)
        background.add_task(noop)
        if "always" in request.query_params:
            background.add_task(noop(), run_if="always")
        outcome = request.query_params["outcome"]
        if outcome == "raise":
            raise RuntimeError("handler bug")
        if outcome == "http-exception":
            raise HTTPException(status_code=409, detail="conflict")
        return PlainTextResponse("done", status_code=int(outcome))

    return make_app(Route("/", endpoint), **options)


@pytest.mark.parametrize(
    ("run_if", "outcome", "expected"),
    [
        ("no_exception", "200", TaskState.COMPLETED),
        ("no_exception", "404", TaskState.COMPLETED),
        ("no_exception", "http-exception", TaskState.COMPLETED),
        ("no_exception", "raise", TaskState.DROPPED),
        ("success", "302", TaskState.COMPLETED),
        ("success", "404", TaskState.DROPPED),
        ("success", "http-exception", TaskState.DROPPED),
        ("success", "raise", TaskState.DROPPED),
        ("always", "500", TaskState.COMPLETED),
        ("always", "raise", TaskState.COMPLETED),
    ],
)
def test_run_if_decides_which_responses_release_their_tasks(
    run_if: str, outcome: str, expected: TaskState, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    with TestClient(run_if_app(run_if=run_if), raise_server_exceptions=False) as client:
        client.get("/", params={"outcome": outcome})
        lightwork_tasks.wait()
    [handle] = lightwork_tasks.tasks
    assert handle.state is expected
    dropped = events(logs, "background_task_dropped")
    assert len(dropped) == (expected is TaskState.DROPPED)
    if dropped:
        assert dropped[0]["task"] == "noop"
        assert "RuntimeError" in dropped[0]["reason"] or "status was" in dropped[0]["reason"]


def test_a_tasks_own_run_if_wins_over_the_middlewares(lightwork_tasks: TaskRecorder) -> None:
    with TestClient(run_if_app(), raise_server_exceptions=False) as client:
        client.get("/", params={"outcome": "raise", "always": "1"})
        lightwork_tasks.wait()
    assert [h.state for h in lightwork_tasks.tasks] == [TaskState.DROPPED, TaskState.COMPLETED]


@pytest.mark.parametrize(
    ("run_if", "path", "expected"),
    [
        ("no_exception", "/v1/raise", TaskState.DROPPED),
        ("no_exception", "/v1/answer-500", TaskState.COMPLETED),
        ("success", "/v1/answer-500", TaskState.DROPPED),
        ("always", "/v1/raise", TaskState.COMPLETED),
    ],
)
def test_a_mounted_app_that_answers_500_then_raises_counts_as_raising(
    run_if: str, path: str, expected: TaskState, lightwork_tasks: TaskRecorder
) -> None:
    # The mounted app's own error middleware sends the 500, then raises again: the outer
    # BackgroundMiddleware sees the whole response before it sees the exception.
    async def endpoint(request: Request) -> Response:
        lightwork.get_background(request).add_task(asyncio.sleep(0))
        if request.url.path.endswith("raise"):
            raise RuntimeError("handler bug")
        return PlainTextResponse("a 500 of its own", status_code=500)

    api = Starlette(routes=[Route("/raise", endpoint), Route("/answer-500", endpoint)])
    app = make_app(Mount("/v1", app=api), run_if=run_if)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(path).status_code == 500
        lightwork_tasks.wait()
    assert [h.state for h in lightwork_tasks.tasks] == [expected]


@pytest.mark.parametrize(("status", "expected"), [(200, "completed"), (404, "dropped")])
def test_a_task_added_after_the_response_follows_run_if_too(
    status: int, expected: str, lightwork_tasks: TaskRecorder
) -> None:
    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)

        def add_late() -> None:  # as a teardown does, once the response is sent
            background.add_task(asyncio.sleep(0), run_if="success", name="late")

        return PlainTextResponse("", status_code=status, background=BackgroundTask(add_late))

    with TestClient(make_app(Route("/", endpoint))) as client:
        assert client.get("/").status_code == status
        lightwork_tasks.wait()
    assert [(h.name, h.state.value) for h in lightwork_tasks.tasks] == [("late", expected)]


def test_awaiting_a_dropped_task_raises_task_dropped(lightwork_tasks: TaskRecorder) -> None:
    with TestClient(run_if_app(), raise_server_exceptions=False) as client:
        client.get("/", params={"outcome": "raise"})
    [handle] = lightwork_tasks.tasks
    with pytest.raises(lightwork.TaskDroppedError, match="RuntimeError"):
        handle.result()


def test_a_base_http_middleware_in_the_stack_does_not_make_the_response_wait(
    lightwork_tasks: TaskRecorder,
) -> None:
    response_received = threading.Event()

    async def wait_for_the_client() -> None:
        if not await asyncio.to_thread(response_received.wait, 5):
            raise AssertionError("the response was held back by its background task")

    async def endpoint(request: Request) -> Response:
        lightwork.get_background(request).add_task(wait_for_the_client)
        return PlainTextResponse("at once")

    async def passthrough(request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[
            Middleware(BaseHTTPMiddleware, dispatch=passthrough),
            Middleware(BackgroundMiddleware),
            Middleware(BaseHTTPMiddleware, dispatch=passthrough),
        ],
    )
    with TestClient(app) as client:
        assert client.get("/").text == "at once"
        response_received.set()
        lightwork_tasks.wait()
    assert lightwork_tasks.tasks[0].state is TaskState.COMPLETED


def test_a_task_does_not_keep_its_request_alive(lightwork_tasks: TaskRecorder) -> None:
    requests: list[weakref.ref[Request]] = []
    release = threading.Event()

    async def hold_on(payload: str) -> str:
        await asyncio.to_thread(release.wait, 5)
        return payload

    async def endpoint(request: Request) -> Response:
        requests.append(weakref.ref(request))
        lightwork.get_background(request).add_task(hold_on, request.url.path)
        return PlainTextResponse("ok")

    with TestClient(make_app(Route("/keep", endpoint))) as client:
        client.get("/keep")
        gc.collect()
        assert lightwork_tasks.tasks[0].state is TaskState.RUNNING
        assert requests[0]() is None, "the running task still references the request"
        release.set()
        lightwork_tasks.wait()
    assert lightwork_tasks.tasks[0].result() == "/keep"


def test_handles_are_found_by_get_background_state_and_decorator(
    lightwork_tasks: TaskRecorder,
) -> None:
    @lightwork.with_background
    async def decorated(request: Request, background: Background) -> Response:
        assert background is lightwork.get_background(request) is request.state.background
        background.add_task(noop)
        return PlainTextResponse("async")

    @lightwork.with_background
    def decorated_sync(request: Request, background: Background) -> Response:
        background.add_task(noop)  # from Starlette's worker thread
        return PlainTextResponse("sync")

    app = make_app(Route("/async", decorated), Route("/sync", decorated_sync))
    with TestClient(app) as client:
        assert client.get("/async").text == "async"
        assert client.get("/sync").text == "sync"
        lightwork_tasks.wait()
    assert lightwork_tasks.names(TaskState.COMPLETED) == ["noop", "noop"]


async def test_request_state_gets_the_handle_with_or_without_lifespan_state() -> None:
    lifespan_state: dict[str, Any] = {"greeting": "hello"}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield lifespan_state

    async def endpoint(request: Request) -> Response:
        assert isinstance(request.state.background, Background)
        return PlainTextResponse(getattr(request.state, "greeting", "no state"))

    app = make_app(Route("/", endpoint))
    app.router.lifespan_context = lifespan
    with TestClient(app) as client:  # a server with lifespan state: a copy per request
        assert client.get("/").text == "hello"
    assert lifespan_state == {"greeting": "hello"}  # the app's own dict is left alone
    transport = httpx2.ASGITransport(app=app)  # no lifespan, so no "state" in the scope
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/")).text == "no state"


def test_without_the_middleware_get_background_says_how_to_install_it() -> None:
    async def endpoint(request: Request) -> Response:
        lightwork.get_background(request)
        return PlainTextResponse("unreachable")

    app = Starlette(routes=[Route("/", endpoint)])
    with (
        TestClient(app) as client,
        pytest.raises(lightwork.BackgroundNotInstalledError, match="BackgroundMiddleware"),
    ):
        client.get("/")


def test_websocket_tasks_start_at_once(lightwork_tasks: TaskRecorder) -> None:
    @lightwork.with_background
    async def chat(websocket: WebSocket, background: Background) -> None:
        await websocket.accept()
        message = await websocket.receive_text()
        handle = background.add_task(asyncio.sleep(0, f"echo {message}"))
        await websocket.send_text(await handle)
        await websocket.close()

    with TestClient(make_app(WebSocketRoute("/ws", chat))) as client:
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("hi")
            assert websocket.receive_text() == "echo hi"
        lightwork_tasks.wait()


def test_the_lifespan_starts_the_scheduler_and_drains_it_before_the_apps_shutdown(
    logs: Logs,
) -> None:
    scheduler = Scheduler(drain_timeout=5)
    order: list[str] = []

    async def warm_cache() -> None:
        await asyncio.sleep(0.05)
        order.append("startup task done")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        scheduler.add_task(warm_cache)  # the app's scheduler is reachable from startup code
        yield
        order.append("app shutdown")

    app = Starlette(
        routes=[Route("/", ok)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
        lifespan=lifespan,
    )
    with TestClient(app) as client:
        client.get("/")
    assert order == ["startup task done", "app shutdown"]
    [started] = events(logs, "background_scheduler_started")
    assert started["lifespan"] is True
    assert events(logs, "background_scheduler_closed")[0]["completed"] == 1


def test_the_middleware_validates_its_options() -> None:
    app = Starlette()
    with pytest.raises(ValueError, match="start must be one of 'after_response', 'immediately'"):
        BackgroundMiddleware(app, start="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="run_if must be one of"):
        BackgroundMiddleware(app, run_if="never")  # type: ignore[arg-type]
    # Of the wrong type: compiled, mypyc's own argument check refuses it first, in its words.
    for options, plain, compiled in (
        ({"run_if": None}, "run_if must be a str", "str object expected"),
        ({"scheduler": object()}, "must be a lightwork.Scheduler", "Scheduler or None object"),
        ({"request_context": 1}, "request_context must be True or False", "bool object"),
    ):
        message = compiled if lightwork.compiled else plain
        with pytest.raises(TypeError, match=re.escape(message)):
            BackgroundMiddleware(app, **options)
    assert repr(BackgroundMiddleware(app)) == (
        "<BackgroundMiddleware start='after_response' run_if='no_exception'>"
    )


def test_a_test_client_without_lifespan_still_runs_tasks_on_each_requests_loop(
    logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    async def endpoint(request: Request) -> Response:
        handle = lightwork.get_background(request).add_task(asyncio.sleep(0, "ran"))
        await asyncio.sleep(0)
        return PlainTextResponse(str(handle.id))

    app = make_app(Route("/", endpoint), start="immediately")
    client = TestClient(app)  # no `with`: no lifespan, a new event loop for every request
    for _ in range(2):
        assert client.get("/").status_code == 200
    assert lightwork_tasks.names(TaskState.COMPLETED) == ["sleep", "sleep"]
    assert [e["lifespan"] for e in events(logs, "background_scheduler_started")] == [False, False]


def test_a_sync_endpoint_without_lifespan_starts_its_tasks_on_its_requests_loop(
    logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    async def ping() -> str:
        return "pong"

    def add_from_a_thread(request: Request) -> Response:
        lightwork.get_background(request).add_task(ping)  # starts at once: from this thread
        return PlainTextResponse("ok")

    async def add_on_the_loop(request: Request) -> Response:
        lightwork.get_background(request).add_task(ping)
        return PlainTextResponse("ok")

    app = make_app(
        Route("/sync", add_from_a_thread), Route("/async", add_on_the_loop), start="immediately"
    )
    client = TestClient(app)  # no `with`: no lifespan, a new event loop for every request
    for path in ("/sync", "/async", "/sync"):  # the scheduler's loop closes after each one
        assert client.get(path).status_code == 200
    assert lightwork_tasks.names(TaskState.COMPLETED) == ["ping", "ping", "ping"]
    assert len(events(logs, "background_scheduler_started")) == 3


def test_a_dropped_tasks_async_on_error_runs_though_no_task_started_the_scheduler() -> None:
    seen: list[str] = []

    async def note(error: BaseException) -> None:
        seen.append(type(error).__name__)

    async def endpoint(request: Request) -> Response:
        lightwork.get_background(request).add_task(
            asyncio.sleep(0), run_if="success", on_error=note
        )
        return PlainTextResponse("no", status_code=400)

    client = TestClient(make_app(Route("/", endpoint)))  # no lifespan: nothing bound a loop
    assert client.get("/").status_code == 400
    assert seen == ["TaskDroppedError"]


def test_tasks_log_with_their_requests_context_and_their_own_name(
    logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    import structlog  # noqa: PLC0415

    async def audited(user: str) -> None:
        structlog.get_logger("app").info("audit_written", user=user)

    async def endpoint(request: Request) -> Response:
        structlog.get_logger("app").info("handling")
        lightwork.get_background(request).add_task(audited, "ada")
        return PlainTextResponse("ok")

    with TestClient(make_app(Route("/users/ada", endpoint, methods=["POST"]))) as client:
        client.post("/users/ada", headers={"X-Request-ID": "req-42"})
        client.post("/users/ada")
        lightwork_tasks.wait()
    handled = events(logs, "handling")
    audits = events(logs, "audit_written")
    assert [e["request_id"] for e in audits] == [e["request_id"] for e in handled]
    assert audits[0]["request_id"] == "req-42"
    assert len(audits[1]["request_id"]) == 16  # made up: no X-Request-ID header
    for audit in audits:
        assert (audit["method"], audit["path"], audit["task"]) == ("POST", "/users/ada", "audited")
        assert audit["task_id"] in {h.id for h in lightwork_tasks.tasks}
    assert {h.route for h in lightwork_tasks.tasks} == {"POST /users/ada"}
    assert "task" not in handled[0]  # the request itself is not a task


def test_a_request_has_one_id_for_its_tasks_though_made_only_when_one_logs(
    logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    import structlog  # noqa: PLC0415

    asked: list[str] = []

    async def reads() -> None:
        asked.append(str(lightwork.current_request_id()))

    def logs_from_a_thread() -> None:
        structlog.get_logger("app").info("from_thread")

    async def logs_on_the_loop() -> None:
        await asyncio.sleep(0.01)
        structlog.get_logger("app").info("on_loop")

    async def endpoint(request: Request) -> Response:  # logs nothing itself
        background = lightwork.get_background(request)
        background.add_task(logs_from_a_thread)
        background.add_task(logs_on_the_loop)
        background.add_task(reads)
        return PlainTextResponse("ok")

    with TestClient(make_app(Route("/", endpoint))) as client:
        client.get("/")
        client.get("/")
        lightwork_tasks.wait()
    assert lightwork.current_request_id() is None  # outside requests
    threads, loops = events(logs, "from_thread"), events(logs, "on_loop")
    ids = [(t["request_id"], o["request_id"]) for t, o in zip(threads, loops, strict=True)]
    assert [a for a, b in ids if a == b] == [a for a, _ in ids]  # one id per request
    assert sorted(asked) == sorted(a for a, _ in ids)  # current_request_id() agrees
    assert len(set(asked)) == 2  # and each request has its own
    assert all(re.fullmatch(r"[0-9a-f]{16}", str(a)) for a in asked)
    assert {t["task"] for t in threads} == {"logs_from_a_thread"}


@pytest.mark.parametrize("binder", ["outer BackgroundMiddleware", "app's own middleware"])
def test_a_request_id_bound_around_the_middleware_is_kept(
    binder: str, logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    import structlog  # noqa: PLC0415

    async def endpoint(request: Request) -> Response:
        structlog.get_logger("app").info("inner")
        lightwork.get_background(request).add_task(asyncio.sleep(0))
        return PlainTextResponse("ok")

    class LogFirst:  # a pure ASGI middleware around the mounted app, which has its own
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                if binder == "app's own middleware":
                    structlog.contextvars.bind_contextvars(request_id="app-1")
                structlog.get_logger("app").info("outer")
            await self.app(scope, receive, send)

    outer = [Middleware(LogFirst)]
    if binder == "outer BackgroundMiddleware":
        outer.insert(0, Middleware(BackgroundMiddleware))
    api = make_app(Route("/", endpoint))
    with TestClient(Starlette(routes=[Mount("/api", app=api)], middleware=outer)) as client:
        client.get("/api/")
        lightwork_tasks.wait()
    [outer_event], [inner_event] = events(logs, "outer"), events(logs, "inner")
    assert inner_event["request_id"] == outer_event["request_id"]
    if binder == "app's own middleware":
        assert inner_event["request_id"] == "app-1"
    assert [h.state for h in lightwork_tasks.tasks] == [TaskState.COMPLETED]


def test_request_context_can_be_turned_off(logs: Logs, lightwork_tasks: TaskRecorder) -> None:
    import structlog  # noqa: PLC0415

    async def endpoint(request: Request) -> Response:
        structlog.get_logger("app").info("handling")
        return PlainTextResponse("ok")

    with TestClient(make_app(Route("/", endpoint), request_context=False)) as client:
        client.get("/", headers={"X-Request-ID": "req-1"})
    assert "request_id" not in events(logs, "handling")[0]


def test_a_task_that_blocks_the_loop_is_named_with_its_route(
    logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    async def crunch() -> None:
        spin(0.06)  # CPU work, no await

    async def waits() -> None:
        await asyncio.sleep(0.2)

    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)
        background.add_task(crunch)
        background.add_task(waits)
        return PlainTextResponse("ok")

    with TestClient(make_app(Route("/report", endpoint))) as client:
        client.get("/report", headers={"X-Request-ID": "r-7"})
        lightwork_tasks.wait()
    [blocking] = events(logs, "background_task_blocking")
    assert blocking["task"] == "crunch"
    assert blocking["route"] == "GET /report"
    assert blocking["request_id"] == "r-7"
    assert blocking["blocked_ms"] >= 50
    assert blocking["threshold_ms"] == 20.0
    assert "offload" in blocking["hint"]
    slow = {e["task"]: e for e in events(logs, "background_task_slow")}
    assert "waits" in slow  # waiting politely is slow, not blocking (crunch may be both,
    # on a machine busy enough to stretch its 60 ms of CPU past the 100 ms slow threshold)
    assert slow["waits"]["blocked_ms"] < 20
