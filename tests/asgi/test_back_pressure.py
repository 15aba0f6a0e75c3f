"""Back-pressure a handler can feel, through real uvicorn and a real HTTP client.

Tasks a request adds keep their room from the moment they are added, so a task that will
not fit is refused in the handler (a 503 with ``Retry-After``), and no task the handler was
told is accepted is dropped after the response.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket as sockets
import threading
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

import lightwork
from lightwork import BackgroundMiddleware, BackgroundQueueFull, Scheduler, TaskState
from lightwork.fastapi import BackgroundDep
from lightwork.prometheus import TaskCollector
from lightwork.status import status_app
from lightwork.testing import TaskRecorder
from tests.http_server import serving
from tests.support import events, wait_in_thread

Logs = list[MutableMapping[str, Any]]


def gated(gate: threading.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    """A task function, named ``wait_for_gate``, whose tasks wait until *gate* is set."""

    async def wait_for_gate() -> None:
        await asyncio.to_thread(gate.wait, 10)

    return wait_for_gate


def held_app(
    scheduler: Scheduler, gate: threading.Event, **middleware: Any
) -> tuple[Starlette, CollectorRegistry]:
    """An app whose ``/add?n=N`` adds N tasks that wait for *gate*; with metrics and status."""
    wait_for_gate = gated(gate)

    async def add(request: Request) -> Response:
        background = lightwork.get_background(request)
        for _ in range(int(request.query_params.get("n", "1"))):
            if request.query_params.get("wait"):
                await background.add_task_wait(wait_for_gate)
            else:
                background.add_task(wait_for_gate)
        return PlainTextResponse("accepted", status_code=202)

    registry = CollectorRegistry()
    TaskCollector(scheduler, registry=registry)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(generate_latest(registry).decode())

    app = Starlette(
        routes=[
            Route("/add", add),
            Route("/metrics", metrics),
            Mount("/status", status_app(check=lambda request: True)),
        ],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler, **middleware)],
        exception_handlers={BackgroundQueueFull: lightwork.queue_full_response},
    )
    return app, registry


def gauge(metrics: str, name: str) -> float:
    """The value of a metric of the task ``wait_for_gate``, 0 if it has none yet."""
    for line in metrics.splitlines():
        if line.startswith(f'{name}{{task="wait_for_gate"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_burst_over_the_limits_gets_503s_and_no_accepted_task_is_dropped(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    gate = threading.Event()
    scheduler = Scheduler(max_concurrency=3, max_pending=5)
    app, _ = held_app(scheduler, gate)
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        answers = [client.get("/add") for _ in range(12)]  # each request adds one task
        # While the eight accepted tasks hold their room: what every view of it says.
        metrics = client.get("/metrics").text
        stats = client.get("/status/stats.json").json()
        gate.set()
        wait_in_thread(lambda: scheduler.counts()["completed"] == 8)
    assert [a.status_code for a in answers] == [202] * 8 + [503] * 4
    assert {a.headers.get("Retry-After") for a in answers[8:]} == {"1"}
    # Three run, five wait in the queue; each refused task ended dropped at once.
    assert gauge(metrics, "lightwork_tasks_in_flight") == 3
    assert gauge(metrics, "lightwork_tasks_queued") == 5
    assert gauge(metrics, "lightwork_tasks_scheduled_total") == 12
    assert stats["totals"]["scheduled"] == 12
    assert (stats["totals"]["in_flight"], stats["totals"]["queued"]) == (3, 5)
    assert stats["totals"]["dropped"] == 4
    assert len(stats["running"]) == 3
    assert 'lightwork_tasks_ended_total{state="dropped",task="wait_for_gate"} 4.0' in metrics
    counts = scheduler.counts()
    assert (counts["added"], counts["completed"], counts["dropped"]) == (12, 8, 4)
    dropped = events(logs, "background_task_dropped")
    assert len(dropped) == 4
    assert all("the queue is full" in e["reason"] for e in dropped)
    # The handles: the first eight requests' tasks ran, the last four's were refused.
    assert [h.state for h in lightwork_tasks.tasks] == (
        [TaskState.COMPLETED] * 8 + [TaskState.DROPPED] * 4
    )


@pytest.mark.parametrize(
    ("run_if", "completed"),
    [("no_exception", 8), ("success", 0)],  # "success": the 503 gives the accepted room back
)
def test_a_request_adding_more_tasks_than_fit_hears_so_in_its_handler(
    lightwork_tasks: TaskRecorder, logs: Logs, run_if: lightwork.RunIf, completed: int
) -> None:
    gate = threading.Event()
    gate.set()  # tasks end as soon as they start
    scheduler = Scheduler(max_concurrency=3, max_pending=5)
    app, _ = held_app(scheduler, gate, run_if=run_if)
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        answer = client.get("/add", params={"n": 20})
        # Every task added ended: eight ran (or, with "success", were dropped), one refused.
        wait_in_thread(lambda: sum(scheduler.counts()[s] for s in ("completed", "dropped")) == 9)
        counts = scheduler.counts()
        after = client.get("/add", params={"n": 8})  # all the room is back
        wait_in_thread(lambda: scheduler.counts()["completed"] == completed + 8)
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
    # The ninth task was refused in add_task; the handler never got to the other eleven.
    assert (counts["completed"], counts["dropped"]) == (completed, 9 - completed)
    assert after.status_code == 202
    reasons = [e["reason"] for e in events(logs, "background_task_dropped")]
    assert sum("the queue is full" in r for r in reasons) == 1  # the ninth, refused at once
    assert len(reasons) == 9 - completed  # with "success", the eight the 503 gave back


def test_add_task_wait_slows_the_handler_instead_of_failing_it(
    lightwork_tasks: TaskRecorder,
) -> None:
    gate = threading.Event()
    scheduler = Scheduler(max_concurrency=3, max_pending=5, overflow="wait")
    app, _ = held_app(scheduler, gate)
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        assert client.get("/add", params={"n": 8}).status_code == 202  # all the room, held
        late: list[httpx2.Response] = []
        sender = threading.Thread(
            target=lambda: late.append(client.get("/add", params={"n": 2, "wait": 1}))
        )
        sender.start()
        admission = scheduler._admission
        assert admission is not None
        wait_in_thread(lambda: bool(admission.waiters))
        assert not late  # the handler waits for room
        assert scheduler.counts()["dropped"] == 0
        gate.set()  # the first tasks end and make room: the handler goes on
        sender.join(10)
        wait_in_thread(lambda: scheduler.counts()["completed"] == 10)
    assert late[0].status_code == 202
    assert scheduler.counts()["dropped"] == 0


def test_with_tasks_that_start_at_once_add_task_wait_paces_one_request(
    lightwork_tasks: TaskRecorder,
) -> None:
    ended: list[int] = []
    seen_by_response: list[int] = []

    async def short(n: int) -> None:
        await asyncio.sleep(0.01)
        ended.append(n)

    async def add(request: Request) -> Response:
        background = lightwork.get_background(request)
        for n in range(20):
            await background.add_task_wait(short, n)
        seen_by_response.append(len(ended))
        return PlainTextResponse("done")

    scheduler = Scheduler(max_concurrency=3, max_pending=5)
    app = Starlette(
        routes=[Route("/", add)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler, start="immediately")],
    )
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        assert client.get("/").status_code == 200
        wait_in_thread(lambda: len(ended) == 20)
    # Room for eight: the handler could only add the last twelve as earlier tasks ended.
    assert seen_by_response[0] >= 12
    assert scheduler.counts()["dropped"] == 0


def test_every_path_that_holds_tasks_keeps_their_room(lightwork_tasks: TaskRecorder) -> None:
    gate = threading.Event()
    wait_for_gate = gated(gate)

    def sync_endpoint(request: Request) -> Response:  # runs in a worker thread
        lightwork.get_background(request).add_task(wait_for_gate)
        return PlainTextResponse("accepted")

    async def with_a_response_task(request: Request) -> Response:
        background = lightwork.get_background(request)

        def after_the_response() -> None:  # decided at once: the response has been sent
            background.add_task(wait_for_gate)

        return PlainTextResponse("accepted", background=BackgroundTask(after_the_response))

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            lightwork.get_background(websocket).add_task(wait_for_gate)
        except BackgroundQueueFull:
            await websocket.send_text("full")
        else:
            await websocket.send_text("accepted")
        await websocket.close()

    fastapi = FastAPI()

    @fastapi.get("/")
    async def fastapi_endpoint(background: BackgroundDep) -> dict[str, str]:
        background.add_task(wait_for_gate)
        return {"ok": "accepted"}

    scheduler = Scheduler(max_concurrency=1, max_pending=3)
    app = Starlette(
        routes=[
            Route("/sync", sync_endpoint),
            Route("/after", with_a_response_task),
            WebSocketRoute("/ws", socket),
            Mount("/fastapi", fastapi),
        ],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
        exception_handlers={BackgroundQueueFull: lightwork.queue_full_response},
    )
    fastapi.add_exception_handler(BackgroundQueueFull, lightwork.queue_full_response)
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        assert client.get("/sync").status_code == 200
        assert client.get("/fastapi/").status_code == 200
        assert client.get("/after").status_code == 200
        wait_in_thread(lambda: scheduler.counts()["added"] == 3)
        assert websocket_says(url) == "accepted"  # the fourth: the room is full now
        assert client.get("/sync").status_code == 503
        assert client.get("/fastapi/").status_code == 503
        assert websocket_says(url) == "full"
        gate.set()
        wait_in_thread(lambda: scheduler.counts()["completed"] == 4)
    counts = scheduler.counts()
    assert (counts["added"], counts["completed"], counts["dropped"]) == (7, 4, 3)


def websocket_says(url: str) -> str:
    """Open ``/ws`` with a bare websocket handshake and return the one message it sends."""
    host, port = url.removeprefix("http://").split(":")
    with sockets.create_connection((host, int(port)), timeout=5) as conn:
        key = base64.b64encode(os.urandom(16)).decode()
        conn.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += conn.recv(4096)
        head, frame = reply.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n", 1)[0]
        while len(frame) < 2 or len(frame) < 2 + (frame[1] & 0x7F):
            frame += conn.recv(4096)
        return frame[2 : 2 + (frame[1] & 0x7F)].decode()


def test_a_request_not_released_gives_its_room_back_at_once(
    lightwork_tasks: TaskRecorder,
) -> None:
    gate = threading.Event()
    gate.set()
    release = threading.Event()

    async def failing(request: Request) -> Response:
        lightwork.get_background(request).add_task(asyncio.sleep, 0)
        lightwork.get_background(request).add_task(asyncio.sleep, 0)
        await asyncio.to_thread(release.wait, 10)
        return PlainTextResponse("no", status_code=400)

    scheduler = Scheduler(max_concurrency=1, max_pending=1)
    app, _ = held_app(scheduler, gate, run_if="success")
    app.router.routes.append(Route("/fail", failing))
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        failed: list[httpx2.Response] = []
        sender = threading.Thread(target=lambda: failed.append(client.get("/fail")))
        sender.start()
        wait_in_thread(lambda: scheduler.counts()["added"] == 2)
        assert client.get("/add").status_code == 503  # the failing request keeps the room
        release.set()
        sender.join(10)
        assert client.get("/add", params={"n": 2}).status_code == 202  # given back at once
        wait_in_thread(lambda: scheduler.counts()["completed"] == 2)
    assert failed[0].status_code == 400
    counts = scheduler.counts()
    assert (counts["added"], counts["completed"], counts["dropped"]) == (5, 2, 3)


def test_add_task_wait_waits_on_other_requests_but_never_on_a_request_that_waits_too(
    lightwork_tasks: TaskRecorder,
) -> None:
    first_added, go_on = threading.Event(), threading.Event()

    async def short() -> None:
        await asyncio.sleep(0.01)

    async def first(request: Request) -> Response:
        background = lightwork.get_background(request)
        background.add_task(short)
        first_added.set()
        await asyncio.to_thread(go_on.wait, 10)
        await background.add_task_wait(short)  # the second request waits on this one
        return PlainTextResponse("accepted")

    async def second(request: Request) -> Response:
        background = lightwork.get_background(request)
        background.add_task(short)
        await background.add_task_wait(short)  # all the room is kept: waits for the first
        return PlainTextResponse("accepted")

    scheduler = Scheduler(max_concurrency=1, max_pending=1)  # room for two tasks
    app = Starlette(
        routes=[Route("/first", first), Route("/second", second)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
        exception_handlers={BackgroundQueueFull: lightwork.queue_full_response},
    )
    answers: dict[str, httpx2.Response] = {}
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        senders = [
            threading.Thread(target=lambda path=path: answers.update({path: client.get(path)}))
            for path in ("/first", "/second")
        ]
        senders[0].start()
        assert first_added.wait(5)
        senders[1].start()
        admission = scheduler._admission
        assert admission is not None
        # The first request will end and release its task: the second waits for that.
        wait_in_thread(lambda: bool(admission.waiters))
        assert not answers
        # Now the first waits as well, on room the waiting second keeps: it is told at once.
        go_on.set()
        for sender in senders:
            sender.join(10)
        wait_in_thread(lambda: scheduler.counts()["completed"] == 3)
    assert (answers["/first"].status_code, answers["/second"].status_code) == (503, 200)
    counts = scheduler.counts()
    assert (counts["added"], counts["completed"], counts["dropped"]) == (4, 3, 1)
