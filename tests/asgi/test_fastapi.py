"""FastAPI: the ``BackgroundDep`` dependency and ``HTTPException`` under ``run_if``."""

from __future__ import annotations

import asyncio

import anyio.to_thread
import httpx2
import pytest
from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.testclient import TestClient

from lightwork import BackgroundMiddleware, RunIf, TaskState
from lightwork.fastapi import BackgroundDep
from lightwork.testing import TaskRecorder


async def record_signup(address: str) -> str:
    await asyncio.sleep(0)
    return f"recorded {address}"


def make_app(run_if: RunIf = "no_exception") -> FastAPI:
    app = FastAPI()
    app.add_middleware(BackgroundMiddleware, run_if=run_if)

    @app.post("/signup")
    async def signup(address: str, background: BackgroundDep) -> dict[str, int]:
        handle = background.add_task(record_signup, address)
        if address == "taken@example.com":
            raise HTTPException(status_code=409, detail="address taken")
        return {"task_id": handle.id}

    @app.websocket("/ws")
    async def chat(websocket: WebSocket, background: BackgroundDep) -> None:
        await websocket.accept()
        handle = background.add_task(record_signup, await websocket.receive_text())
        await websocket.send_text(await handle)
        await websocket.close()

    return app


def test_a_path_operation_gets_the_handle_from_the_dependency(
    lightwork_tasks: TaskRecorder,
) -> None:
    with TestClient(make_app()) as client:
        response = client.post("/signup", params={"address": "ada@example.com"})
        lightwork_tasks.wait()
    [handle] = lightwork_tasks.tasks
    assert response.json() == {"task_id": handle.id}
    assert handle.result() == "recorded ada@example.com"


@pytest.mark.parametrize(
    ("run_if", "expected"),
    [("no_exception", TaskState.COMPLETED), ("success", TaskState.DROPPED)],
)
def test_an_http_exception_follows_run_if_like_any_response_with_its_status(
    run_if: RunIf, expected: TaskState, lightwork_tasks: TaskRecorder
) -> None:
    with TestClient(make_app(run_if)) as client:
        response = client.post("/signup", params={"address": "taken@example.com"})
        lightwork_tasks.wait()
    assert response.status_code == 409
    assert lightwork_tasks.tasks[0].state is expected


def test_a_websocket_route_gets_the_handle_too(lightwork_tasks: TaskRecorder) -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as websocket:
        websocket.send_text("bob@example.com")
        assert websocket.receive_text() == "recorded bob@example.com"


async def test_the_dependency_takes_no_thread_from_starlettes_pool(
    lightwork_tasks: TaskRecorder,
) -> None:
    pool = anyio.to_thread.current_default_thread_limiter()
    tokens, sync_endpoints = pool.total_tokens, object()
    pool.total_tokens = 1
    await pool.acquire_on_behalf_of(sync_endpoints)  # every thread of the pool is busy
    try:
        transport = httpx2.ASGITransport(app=make_app())
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await asyncio.wait_for(
                client.post("/signup", params={"address": "ada@example.com"}), 5
            )
        assert response.status_code == 200
        await lightwork_tasks.join()
    finally:
        pool.release_on_behalf_of(sync_endpoints)
        pool.total_tokens = tokens
    assert lightwork_tasks.names(TaskState.COMPLETED) == ["record_signup"]
