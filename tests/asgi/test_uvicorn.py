"""Real uvicorn on 127.0.0.1, real HTTP: detached tasks never hold up a response or a connection."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import lightwork
from lightwork import BackgroundMiddleware, TaskState
from lightwork.testing import TaskRecorder
from tests.http_server import serving
from tests.support import events


def build_app() -> Starlette:
    released = asyncio.Event()

    async def wait_for_release() -> str:
        await released.wait()
        return "released by the next request"

    async def first(request: Request) -> Response:
        lightwork.get_background(request).add_task(wait_for_release(), timeout=5)
        return PlainTextResponse("first")

    async def second(request: Request) -> Response:
        released.set()
        return PlainTextResponse("second")

    return Starlette(
        routes=[Route("/first", first), Route("/second", second)],
        middleware=[Middleware(BackgroundMiddleware)],
    )


@pytest.fixture(params=["asyncio", "uvloop"])
def server_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """Serve the app with real uvicorn on a free loopback port, in a thread; stop it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(build_app(), loop=request.param, http="h11", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            thread.join(0.01)
        assert server.started, "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_keep_alive_connection_is_not_held_up_by_an_earlier_requests_task(
    server_port: int, lightwork_tasks: TaskRecorder
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
    try:
        connection.request("GET", "/first")
        first = connection.getresponse()
        assert first.read() == b"first"
        [task] = lightwork_tasks.tasks
        assert not task.done()  # the response came while its task waits
        local_address = connection.sock.getsockname()
        # The task waits for this second request: if the connection were held up by the
        # task, this request would only be served after the task timed out.
        connection.request("GET", "/second")
        assert connection.getresponse().read() == b"second"
        assert connection.sock.getsockname() == local_address  # one keep-alive connection
    finally:
        connection.close()
    lightwork_tasks.wait()
    assert task.state is TaskState.COMPLETED
    assert task.result() == "released by the next request"


def test_a_streamed_response_the_client_cuts_off_does_not_count_as_a_success(
    lightwork_tasks: TaskRecorder, logs: list[MutableMapping[str, Any]]
) -> None:
    async def mark_export_delivered() -> str:
        return "marked"

    async def export(request: Request) -> Response:
        lightwork.get_background(request).add_task(mark_export_delivered)

        async def rows() -> AsyncIterator[str]:
            for row in range(int(request.query_params["rows"])):
                yield f"row {row}\n" * 100
                await asyncio.sleep(0.01)

        return StreamingResponse(rows())

    app = Starlette(
        routes=[Route("/export", export)],
        middleware=[Middleware(BackgroundMiddleware, run_if="success")],
    )
    with serving(app) as url:
        port = int(url.rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET /export?rows=1000 HTTP/1.1\r\nHost: test\r\n\r\n")
            assert client.recv(4096)  # the first rows: then the client hangs up
        lightwork_tasks.wait()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/export?rows=3")
        assert connection.getresponse().read().count(b"row") == 300
        connection.close()
        lightwork_tasks.wait()
    cut_off, delivered = lightwork_tasks.tasks
    assert (cut_off.state, delivered.state) == (TaskState.DROPPED, TaskState.COMPLETED)
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["reason"] == "the response was cut off before its end (run_if='success')"
