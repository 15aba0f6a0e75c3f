"""The docs' examples, imported and run: each test checks what its page says they do.

The examples live in ``docs/examples/`` as real modules, so that the pages include them
verbatim and these tests keep them true. The two tests of the testing page are imported
as they are, with their fixtures, and pytest runs them here.
"""

# ruff: noqa: E402 -- the examples are importable once their folder is on sys.path
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx2
import pytest
import structlog
from starlette.testclient import TestClient

import lightwork
from lightwork import TaskState, TaskTimeoutError
from tests.support import events

if TYPE_CHECKING:
    from lightwork.testing import TaskRecorder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "examples"))

import adding_tasks
import blocking_task
import context_vars
import fastapi_app
import logging_console
import logging_json
import middleware_options
import outside_requests
import quickstart
import task_decorator
import task_options
import websocket_app

# The testing page's own tests, with their fixtures: pytest collects them from this module.
from testing_async_example import async_client, test_a_stuck_partner_times_out_and_reaches_on_error
from testing_example import client, test_signup_sends_a_welcome_email

__all__ = [
    "async_client",
    "client",
    "test_a_stuck_partner_times_out_and_reaches_on_error",
    "test_signup_sends_a_welcome_email",
]

Logs = list[MutableMapping[str, Any]]


@pytest.fixture
def plain_structlog() -> Iterator[None]:
    """Undo whatever configuration a logging example installs."""
    try:
        yield
    finally:
        structlog.reset_defaults()


# -- index.md: the quickstart ------------------------------------------------------------


def test_quickstart_answers_before_the_email_is_sent(
    monkeypatch: pytest.MonkeyPatch, lightwork_tasks: TaskRecorder
) -> None:
    gate = threading.Event()
    send = quickstart.send_welcome_email

    async def send_when_allowed(address: str) -> None:
        await anyio.to_thread.run_sync(gate.wait, 5)
        await send(address)

    monkeypatch.setattr(quickstart, "send_welcome_email", send_when_allowed)
    quickstart.outbox.clear()
    with TestClient(quickstart.app) as client:
        response = client.post("/signup", json={"email": "grace@example.com"})
        # The response is here while its task is still held back: it did not wait.
        assert response.status_code == 201
        [email] = lightwork_tasks.in_state(TaskState.RUNNING)
        assert quickstart.outbox == []
        gate.set()
        lightwork_tasks.wait()
    assert email.state is TaskState.COMPLETED
    assert quickstart.outbox == ["grace@example.com"]


# -- guide.md: adding tasks ----------------------------------------------------------------


def test_both_forms_and_a_sync_function_run_after_the_response(
    lightwork_tasks: TaskRecorder,
) -> None:
    adding_tasks.sent.clear()
    adding_tasks.thumbnails.clear()
    with TestClient(adding_tasks.app) as client:
        response = client.post("/signup")
        lightwork_tasks.wait()
    tips = lightwork_tasks.tasks[1]
    assert response.json() == {"task_id": tips.id, "name": "tips-email", "state": "pending"}
    assert lightwork_tasks.names(TaskState.COMPLETED) == [
        "send_email",
        "tips-email",
        "make_thumbnail",
    ]
    assert tips.timeout == 5
    # The Starlette form passed name="Ada" to the function, not to lightwork.
    assert sorted(adding_tasks.sent) == [
        ("ada@example.com", "Getting started", "there"),
        ("ada@example.com", "Welcome", "Ada"),
    ]
    assert adding_tasks.thumbnails == ["ada.png"]


def test_a_sync_function_runs_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, lightwork_tasks: TaskRecorder
) -> None:
    make_thumbnail = adding_tasks.make_thumbnail
    on_the_loop: list[bool] = []

    def noting_the_thread(image: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            on_the_loop.append(False)
        else:
            on_the_loop.append(True)
        make_thumbnail(image)

    monkeypatch.setattr(adding_tasks, "make_thumbnail", noting_the_thread)
    with TestClient(adding_tasks.app) as client:
        client.post("/signup")
        lightwork_tasks.wait()
    assert on_the_loop == [False]


# -- guide.md: options --------------------------------------------------------------------


async def test_on_complete_gets_the_result(
    async_client: httpx2.AsyncClient, lightwork_tasks: TaskRecorder
) -> None:
    task_options.delivered.clear()
    response = await async_client.post("/webhooks/quick-partner")
    await lightwork_tasks.join()
    [delivery] = lightwork_tasks.tasks
    assert response.json() == {"task_id": delivery.id}
    assert delivery.state is TaskState.COMPLETED
    assert task_options.delivered == ["receipt-for-quick-partner"]


async def test_a_timeout_is_reported_slow_first_then_timed_out_and_reaches_on_error(
    async_client: httpx2.AsyncClient, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    task_options.failures.clear()
    await async_client.post("/webhooks/stuck-partner")
    await lightwork_tasks.join()
    [delivery] = lightwork_tasks.tasks
    assert delivery.state is TaskState.TIMED_OUT
    slow, timed_out = (e for e in logs if e["event"].startswith("background_task_"))
    assert slow["event"] == "background_task_slow"
    assert slow["log_level"] == "warning"
    assert slow["task"] == "partner-webhook"
    assert slow["task_id"] == delivery.id
    assert slow["threshold_ms"] == 250.0
    assert slow["duration_ms"] >= 250.0
    assert "offload" in slow["hint"]
    assert timed_out["event"] == "background_task_timed_out"
    assert timed_out["log_level"] == "warning"
    assert timed_out["timeout_s"] == 0.5


async def test_join_waits_for_an_async_on_error(
    monkeypatch: pytest.MonkeyPatch,
    async_client: httpx2.AsyncClient,
    lightwork_tasks: TaskRecorder,
) -> None:
    failures: list[BaseException] = []

    async def schedule_retry(error: BaseException) -> None:
        await asyncio.sleep(0.2)  # e.g. a database write that takes a while
        failures.append(error)

    monkeypatch.setattr(task_options, "schedule_retry", schedule_retry)
    await async_client.post("/webhooks/stuck-partner")
    await lightwork_tasks.join()
    assert len(failures) == 1


async def test_an_async_on_error_gets_the_timeout_error(
    lightwork_tasks: TaskRecorder,
) -> None:
    task_options.failures.clear()
    transport = httpx2.ASGITransport(app=task_options.app)
    async with task_options.scheduler:
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/webhooks/stuck-partner")
        await lightwork_tasks.join()
    # Closing the scheduler waited for the async callback too.
    [error] = task_options.failures
    assert isinstance(error, TaskTimeoutError)
    assert isinstance(error, TimeoutError)


def test_a_task_that_blocks_the_loop_is_reported(lightwork_tasks: TaskRecorder, logs: Logs) -> None:
    blocking_task.digests.clear()
    with TestClient(blocking_task.app) as client:
        client.post("/upload", content=b"holiday photos")
        lightwork_tasks.wait()
    on_the_loop, in_a_thread = lightwork_tasks.tasks
    assert on_the_loop.longest_step >= 0.05
    reported = {e["task"]: e for e in events(logs, "background_task_blocking")}
    blocking = reported["index_upload_on_the_loop"]
    assert blocking["log_level"] == "warning"
    assert blocking["task_id"] == on_the_loop.id
    assert blocking["blocked_ms"] >= 50
    assert blocking["threshold_ms"] == 20.0
    assert "offload" in blocking["hint"]
    assert in_a_thread.state is TaskState.COMPLETED
    assert len(set(blocking_task.digests)) == 1


def test_a_task_knows_the_route_that_added_it(lightwork_tasks: TaskRecorder) -> None:
    with TestClient(blocking_task.app) as client:
        client.post("/upload", content=b"holiday photos")
        lightwork_tasks.wait()
    assert [task.route for task in lightwork_tasks.tasks] == ["POST /upload", "POST /upload"]


# -- guide.md: @lightwork.task ----------------------------------------------------------------


def test_the_definition_gives_defaults_and_the_call_wins(lightwork_tasks: TaskRecorder) -> None:
    task_decorator.synced.clear()
    with TestClient(task_decorator.app) as client:
        client.put("/contacts/7")
        lightwork_tasks.wait()
    starlette_form, options_form = lightwork_tasks.tasks
    assert (starlette_form.name, starlette_form.timeout, starlette_form.slow_threshold) == (
        "crm-sync",
        10,
        1.0,
    )
    assert (options_form.name, options_form.timeout, options_form.slow_threshold) == (
        "crm-sync",
        60,
        1.0,
    )
    assert task_decorator.synced == [7, 7]


async def test_a_decorated_function_is_still_an_ordinary_function() -> None:
    task_decorator.synced.clear()
    await task_decorator.sync_contact(3)
    assert task_decorator.synced == [3]


# -- guide.md: middleware and scheduler options -------------------------------------------------


@pytest.fixture
async def options_client() -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=middleware_options.app)
    async with (
        middleware_options.scheduler,
        httpx2.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


async def test_start_immediately_lets_a_response_await_its_own_task(
    options_client: httpx2.AsyncClient,
) -> None:
    async with asyncio.timeout(5):  # with start="after_response" this would never end
        response = await options_client.get("/export")
    assert response.text == "building the export\ndone: 1000 rows\n"


async def test_a_sync_endpoint_can_add_tasks(
    options_client: httpx2.AsyncClient, lightwork_tasks: TaskRecorder
) -> None:
    middleware_options.pings.clear()
    response = await options_client.get("/ping")
    await lightwork_tasks.join()
    assert response.text == "pong"
    assert middleware_options.pings == ["sync endpoint"]


def test_the_scheduler_options_are_the_documented_ones() -> None:
    scheduler = middleware_options.scheduler
    assert (scheduler.timeout, scheduler.slow_threshold) == (60, 0.5)
    assert (scheduler.drain_timeout, scheduler.max_threads) == (5, 4)


# -- guide.md: FastAPI and run_if ---------------------------------------------------------------


def test_fastapi_runs_both_tasks_after_a_success(lightwork_tasks: TaskRecorder) -> None:
    fastapi_app.confirmations.clear()
    fastapi_app.attempts.clear()
    with TestClient(fastapi_app.app) as client:
        response = client.post("/orders", json={"id": 1, "items": ["tea", "scones"]})
        lightwork_tasks.wait()
    assert response.status_code == 201
    assert fastapi_app.confirmations == [1]
    assert fastapi_app.attempts == [(1, 2)]


def test_fastapi_http_exception_drops_the_confirmation_but_records_the_attempt(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    fastapi_app.confirmations.clear()
    fastapi_app.attempts.clear()
    with TestClient(fastapi_app.app) as client:
        response = client.post("/orders", json={"id": 2, "items": []})
        lightwork_tasks.wait()
    assert response.status_code == 422
    assert lightwork_tasks.names(TaskState.COMPLETED) == ["record_attempt"]
    assert lightwork_tasks.names(TaskState.DROPPED) == ["send_confirmation"]
    assert fastapi_app.confirmations == []
    assert fastapi_app.attempts == [(2, 0)]
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["task"] == "send_confirmation"
    assert "422" in dropped["reason"]


# -- guide.md: websockets ---------------------------------------------------------------------


def test_websocket_tasks_start_at_once(lightwork_tasks: TaskRecorder) -> None:
    websocket_app.stored.clear()
    with TestClient(websocket_app.app) as client:
        with client.websocket_connect("/chat") as websocket:
            websocket.send_text("hello")
            first = websocket.receive_json()
            assert lightwork_tasks.tasks[0].state is not TaskState.PENDING
            websocket.send_text("bye")
            websocket.receive_json()
        lightwork_tasks.wait()
    assert first == {"queued": lightwork_tasks.tasks[0].id}
    assert websocket_app.stored == ["hello", "bye"]


# -- guide.md: outside requests ---------------------------------------------------------------


def test_startup_code_and_background_scheduler_add_tasks(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    outside_requests.cache.clear()
    with TestClient(outside_requests.app) as client:
        lightwork_tasks.wait()
        assert lightwork_tasks.names(TaskState.COMPLETED) == ["warm-cache"]
        response = client.get("/stats")
        lightwork_tasks.wait()
    assert response.json() == {"products": 120, "categories": 8}
    assert lightwork_tasks.names(TaskState.COMPLETED) == ["warm-cache", "refresh-cache"]
    # The lifespan started the scheduler before the startup code added its task.
    [started] = events(logs, "background_scheduler_started")
    assert started["lifespan"] is True


async def test_a_script_awaits_handles_and_cancels_one(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    assert await outside_requests.nightly_cleanup() == 42
    [cancelled] = lightwork_tasks.in_state(TaskState.CANCELLED)
    assert cancelled.name == "purge-audit-log"
    [logged] = events(logs, "background_task_cancelled")
    assert (logged["task"], logged["reason"]) == ("purge-audit-log", "cancelled")
    [closed] = events(logs, "background_scheduler_closed")
    assert (closed["completed"], closed["cancelled"]) == (2, 1)


# -- guide.md: context propagation --------------------------------------------------------------


def test_each_task_sees_its_own_requests_context(lightwork_tasks: TaskRecorder, logs: Logs) -> None:
    context_vars.invoices.clear()
    with TestClient(context_vars.app) as client:
        for n, tenant in ((1, "acme"), (2, "globex")):
            client.post(f"/checkout/{n}", headers={"x-request-id": f"req-{n}", "x-tenant": tenant})
        lightwork_tasks.wait()
    assert sorted(context_vars.invoices) == [
        ("acme", "archive-1"),
        ("acme", "order-1"),
        ("globex", "archive-2"),
        ("globex", "order-2"),
    ]
    sent = {
        e["order_id"]: (e["request_id"], e["method"], e["path"], e["task"])
        for e in events(logs, "invoice_sent")
    }
    assert sent == {
        1: ("req-1", "POST", "/checkout/1", "send_invoice"),
        2: ("req-2", "POST", "/checkout/2", "send_invoice"),
    }
    # lightwork's own events for a task carry its request's context too.
    completed = events(logs, "background_task_completed")
    assert sorted((e["task"], e["request_id"]) for e in completed) == [
        ("archive_order", "req-1"),
        ("archive_order", "req-2"),
        ("send_invoice", "req-1"),
        ("send_invoice", "req-2"),
    ]


# -- guide.md: logging --------------------------------------------------------------------------


async def broken() -> None:
    await asyncio.sleep(0)
    raise ValueError("the mail server said no")


async def quick() -> str:
    await asyncio.sleep(0)
    return "done"


@pytest.mark.usefixtures("plain_structlog")
async def test_json_logs_one_object_per_line() -> None:
    out = io.StringIO()
    logging_json.configure_json_logging(file=out)
    async with lightwork.Scheduler() as scheduler:
        scheduler.add_task(broken(), name="welcome-email")
        scheduler.add_task(quick())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_event = {line["event"]: line for line in lines}
    # At INFO, the debug-level completed event is not emitted at all.
    assert set(by_event) == {"background_task_failed", "background_scheduler_closed"}
    failed = by_event["background_task_failed"]
    assert (failed["level"], failed["task"]) == ("error", "welcome-email")
    [exception] = failed["exception"]
    assert exception["exc_type"] == "ValueError"
    assert all("locals" not in frame for frame in exception["frames"])
    assert "timestamp" in failed
    closed = by_event["background_scheduler_closed"]
    assert (closed["level"], closed["completed"], closed["failed"]) == ("info", 1, 1)


@pytest.mark.usefixtures("plain_structlog")
async def test_console_logs_show_completed_tasks_at_debug() -> None:
    out = io.StringIO()
    logging_console.configure_console_logging(file=out)
    async with lightwork.Scheduler() as scheduler:
        await scheduler.add_task(quick(), name="quick-task")
    lines = out.getvalue().splitlines()
    [completed] = [line for line in lines if "background_task_completed" in line]
    assert "[debug" in completed
    assert "task=quick-task" in completed


@pytest.mark.usefixtures("plain_structlog")
async def test_the_debug_check_is_made_when_the_scheduler_starts() -> None:
    out = io.StringIO()
    logging_console.configure_console_logging(logging.INFO, file=out)
    async with lightwork.Scheduler() as scheduler:
        logging_console.configure_console_logging(logging.DEBUG, file=out)  # too late
        await scheduler.add_task(quick(), name="first")
    assert "background_task_completed" not in out.getvalue()
    async with scheduler:  # started again, under the DEBUG configuration
        await scheduler.add_task(quick(), name="second")
    assert "task=second" in out.getvalue()


# -- api.md -------------------------------------------------------------------------------


def test_the_api_reference_covers_every_public_name() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^::: lightwork\.(\w+)$", page, flags=re.MULTILINE))
    assert set(lightwork.__all__) - {"__version__"} <= documented


# -- README.md ------------------------------------------------------------------------------


def test_the_readme_example_is_the_quickstart() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "docs" / "examples" / "quickstart.py").read_text()
    assert f"```python\n{example}```" in readme


# -- the demo ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_runs_and_stops_by_itself() -> None:
    demo = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    for event in (
        "background_task_slow",
        "background_task_timed_out",
        "webhook_gave_up",
        "thumbnail_made",
        "email_sent",
        "background_scheduler_closed",
    ):
        assert event in demo.stdout
