"""The docs' examples, imported and run: each test checks what its page says they do.

The examples live in ``docs/examples/`` as real modules, so that the pages include them
verbatim and these tests keep them true. The two tests of the testing page are imported
as they are, with their fixtures, and pytest runs them here.
"""

# ruff: noqa: E402 -- the examples are importable once their folder is on sys.path
from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx2
import pytest
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

import lightwork
from lightwork import TaskState, TaskTimeoutError
from lightwork.backends import MemoryBackend
from tests import offload_jobs
from tests.support import events, wait_in_thread, wait_until

if TYPE_CHECKING:
    from lightwork.testing import TaskRecorder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "examples"))

import adding_tasks
import blocking_task
import context_vars
import fastapi_app
import gc_freeze
import limits
import logging_console
import logging_fallback
import logging_json
import loop_blocking
import loop_watchdog
import middleware_options
import outside_requests
import overflow_offload
import quickstart
import request_ids
import shutdown
import task_decorator
import task_options
import websocket_app

# The testing page's own tests, with their fixtures: pytest collects them from this module.
from testing_async_example import async_client, test_a_stuck_partner_times_out_and_reaches_on_error
from testing_example import client, test_signup_sends_a_welcome_email
from testing_logs_example import test_the_confirmation_is_logged_with_the_request_id

__all__ = [
    "async_client",
    "client",
    "test_a_stuck_partner_times_out_and_reaches_on_error",
    "test_signup_sends_a_welcome_email",
    "test_the_confirmation_is_logged_with_the_request_id",
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
    assert "waiting, not computing" in slow["hint"]  # it waited on the partner: no offload
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
    assert on_the_loop.longest_step >= 0.045  # 50 ms, sampled: right to 2.5 ms
    reported = {e["task"]: e for e in events(logs, "background_task_blocking")}
    blocking = reported["index_upload_on_the_loop"]
    assert blocking["log_level"] == "warning"
    assert blocking["task_id"] == on_the_loop.id
    assert blocking["blocked_ms"] >= 45
    assert blocking["threshold_ms"] == 20.0
    assert "offload" in blocking["hint"]
    assert in_a_thread.state is TaskState.COMPLETED
    assert len(set(blocking_task.digests)) == 1


def test_a_task_knows_the_route_that_added_it(lightwork_tasks: TaskRecorder) -> None:
    with TestClient(blocking_task.app) as client:
        client.post("/upload", content=b"holiday photos")
        lightwork_tasks.wait()
    assert [task.route for task in lightwork_tasks.tasks] == ["POST /upload", "POST /upload"]


# -- guide.md: loop-block detection -------------------------------------------------------------


def test_block_thresholds_inline_and_threaded_functions(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    loop_blocking.page_views.clear()
    with TestClient(loop_blocking.app) as client:
        lightwork_tasks.wait()  # the startup task
        client.post("/reviews")
        lightwork_tasks.wait()
    index, summary, invoice, page_view, photo = lightwork_tasks.tasks
    assert all(task.state is TaskState.COMPLETED for task in lightwork_tasks.tasks)
    # The thresholds in force: the call's, else the definition's, else the scheduler's.
    assert (index.block_threshold, summary.block_threshold) == (None, 0.05)
    assert (invoice.block_threshold, page_view.block_threshold) == (0.2, 0.05)
    # Only the task that blocked past its threshold is reported; None never reports,
    # though the task is still charged, and a thread's work is not the loop's.
    [blocking] = events(logs, "background_task_blocking")
    assert (blocking["task"], blocking["task_id"]) == ("summarise_review", summary.id)
    assert blocking["log_level"] == "warning"
    assert blocking["blocked_ms"] >= 90  # 100 ms, sampled: right to half a beat interval
    assert blocking["total_blocked_ms"] >= blocking["blocked_ms"]
    assert blocking["threshold_ms"] == 50.0
    assert "in summarise" in blocking["stack"]  # where sampling found it
    assert blocking["route"] == "POST /reviews"
    assert "offload" in blocking["hint"]
    assert index.longest_step >= 0.09
    # An inline function is one step on the loop; a threaded one ran elsewhere.
    assert page_view.blocked == page_view.longest_step
    assert loop_blocking.page_views == {"/reviews": 1}
    assert photo.result() == "scones-small.png"


async def test_a_slow_task_event_says_how_long_it_held_the_loop(logs: Logs) -> None:
    async def parse_then_wait() -> None:
        loop_blocking.summarise("a long feed")  # holds the loop 100 ms
        await asyncio.sleep(3600)

    async with lightwork.Scheduler(slow_threshold=0.1) as scheduler:
        handle = scheduler.add_task(parse_then_wait())
        await wait_until(lambda: bool(events(logs, "background_task_slow")))
        handle.cancel()
    [slow] = events(logs, "background_task_slow")
    assert slow["blocked_ms"] >= 90  # the longest time it held the loop
    assert slow["total_blocked_ms"] >= slow["blocked_ms"]
    assert slow["duration_ms"] >= slow["threshold_ms"] == 100.0


async def test_an_inline_function_past_its_timeout_still_completes(logs: Logs) -> None:
    @lightwork.task(inline=True, timeout=0.01, slow_threshold=0.02)
    def tally() -> int:
        time.sleep(0.03)
        return 1

    async with lightwork.Scheduler() as scheduler:
        handle = scheduler.add_task(tally)
        assert await handle == 1
    # 30 ms, sampled: at least the 20 ms threshold it was reported at, less any time the
    # loop's thread then waited for a CPU (not the task's), as beside two other suites in CI.
    assert handle.blocked == handle.longest_step >= 0.02
    assert [e["event"] for e in logs if e.get("task") == "tally"] == [
        "background_task_blocking",
        "background_task_slow",
        "background_task_completed",
    ]


async def test_a_sync_callback_holds_the_loop_as_a_step_of_its_task(logs: Logs) -> None:
    def file_report(result: object) -> None:
        time.sleep(0.1)  # e.g. a blocking write

    async with lightwork.Scheduler(block_threshold=0.05) as scheduler:
        await scheduler.add_task(asyncio.sleep(0), name="report", on_complete=file_report)
    [blocking] = events(logs, "background_task_blocking")
    assert (blocking["task"], blocking["threshold_ms"]) == ("report", 50.0)
    assert blocking["blocked_ms"] >= 90


async def test_garbage_collection_is_not_counted_as_blocking(logs: Logs) -> None:
    def slow_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            time.sleep(0.06)  # a collection that pauses the loop for 60 ms

    async def collect() -> None:
        gc.collect()

    async with lightwork.Scheduler(block_threshold=0.05) as scheduler:
        gc.callbacks.append(slow_collection)  # after lightwork's own, which times collections
        try:
            handle = scheduler.add_task(collect())
            await handle
        finally:
            gc.callbacks.remove(slow_collection)
    assert handle.duration is not None
    assert handle.duration >= 0.06
    assert handle.longest_step < 0.06
    assert events(logs, "background_task_blocking") == []


async def test_time_in_the_queue_does_not_count_against_the_timeout() -> None:
    gate = asyncio.Event()
    async with lightwork.Scheduler(max_concurrency=1) as scheduler:
        first = scheduler.add_task(gate.wait())
        queued = scheduler.add_task(asyncio.sleep(0), timeout=0.05)
        await wait_until(lambda: first.duration is not None and first.duration > 0.1)
        assert queued.state.value == "pending"
        assert queued.duration is None  # counted from its first step
        gate.set()
        await queued
    assert queued.state is TaskState.COMPLETED


def test_the_watchdog_reports_a_stuck_task_with_its_stack(
    monkeypatch: pytest.MonkeyPatch, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    monkeypatch.setattr(loop_watchdog, "fetch_rates", hung_until_reported(logs))
    with TestClient(loop_watchdog.app) as client:
        client.post("/rates/refresh")
        lightwork_tasks.wait()
    [refresh] = lightwork_tasks.tasks
    [report] = events(logs, "event_loop_blocked")
    assert report["log_level"] == "warning"
    assert (report["task"], report["task_id"]) == ("refresh_rates", refresh.id)
    assert report["route"] == "POST /rates/refresh"
    assert report["stuck_ms"] >= report["threshold_ms"] == 250.0
    assert "in refresh_rates" in report["stack"]
    assert "offload" in report["hint"]
    # Logged from the watchdog's thread: no request context there.
    assert "request_id" not in report


def test_the_watchdog_names_a_request_handler_that_blocks(
    monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    monkeypatch.setattr(loop_watchdog, "fetch_rates", hung_until_reported(logs))
    with TestClient(loop_watchdog.app) as client:
        assert client.get("/rates").status_code == 200
    [report] = events(logs, "event_loop_blocked")
    assert (report["task"], report["route"]) == (None, "GET /rates")
    assert "in convert" in report["stack"]


def test_the_app_freezes_what_startup_made_and_unfreezes_at_shutdown(
    lightwork_tasks: TaskRecorder,
) -> None:
    with TestClient(gc_freeze.app) as client:
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the catalogue's strings, among the rest of startup
        assert client.get("/items/sku-7").text == "item 7"
        lightwork_tasks.wait()
    assert gc.get_freeze_count() == 0
    assert [task.state for task in lightwork_tasks.tasks] == [TaskState.COMPLETED]


def hung_until_reported(logs: Logs) -> Callable[[], dict[str, float]]:
    """Stand in for a call that hangs, until the watchdog's report frees it (5 s at most)."""

    def hung() -> dict[str, float]:
        deadline = time.monotonic() + 5
        while not events(logs, "event_loop_blocked") and time.monotonic() < deadline:
            time.sleep(0.01)  # polls the log; only the watchdog's thread can end this early
        return {"EUR": 1.0}

    return hung


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


# -- guide.md: request ids -------------------------------------------------------------------------


def test_the_request_id_reaches_the_client_the_request_and_its_task(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    with TestClient(request_ids.app) as client:
        given = client.post("/orders/1", headers={"X-Request-ID": "ticket-1234"})
        made = client.post("/orders/2")
        refused = client.post("/orders/3", headers={"X-Request-ID": "x" * 129})
        lightwork_tasks.wait()
    assert given.headers["X-Request-ID"] == "ticket-1234"
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{16}", refused.headers["X-Request-ID"])  # too long: a new one
    assert given.json() == {"order_id": 1, "task_route": "POST /orders/1"}
    first = lightwork_tasks.tasks[0]
    [placed] = [e for e in events(logs, "order_placed") if e["order_id"] == 1]
    [sent] = [e for e in events(logs, "confirmation_sent") if e["order_id"] == 1]
    [completed] = [e for e in events(logs, "background_task_completed") if e["task_id"] == first.id]
    for event in (placed, sent, completed):
        assert (event["request_id"], event["method"], event["path"]) == (
            "ticket-1234",
            "POST",
            "/orders/1",
        )
    assert "task" not in placed  # bound inside the task only
    assert (sent["task"], sent["task_id"]) == ("send_confirmation", first.id)


def test_request_context_false_binds_nothing(lightwork_tasks: TaskRecorder, logs: Logs) -> None:
    app = Starlette(
        routes=request_ids.app.routes,
        middleware=[Middleware(lightwork.BackgroundMiddleware, request_context=False)],
    )
    with TestClient(app) as client:
        response = client.post("/orders/1")
        lightwork_tasks.wait()
    assert response.status_code == 201
    assert "X-Request-ID" not in response.headers  # current_request_id() said None
    for event in events(logs, "order_placed") + events(logs, "confirmation_sent"):
        assert "request_id" not in event
        assert "method" not in event


def test_a_websockets_tasks_log_its_path_and_the_method_websocket(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    with TestClient(websocket_app.app) as client:
        with client.websocket_connect("/chat") as websocket:
            websocket.send_text("hello")
            websocket.receive_json()
        lightwork_tasks.wait()
    [completed] = events(logs, "background_task_completed")
    assert (completed["method"], completed["path"]) == ("WEBSOCKET", "/chat")
    assert lightwork_tasks.tasks[0].route == "WEBSOCKET /chat"


def test_the_middleware_makes_a_limited_scheduler_or_refuses_both() -> None:
    app = Starlette()
    middleware = lightwork.BackgroundMiddleware(app, max_concurrency=50, overflow="drop")
    assert middleware.scheduler.overflow == "drop"
    admission = middleware.scheduler._admission
    assert admission is not None
    assert admission.max_concurrency == 50
    with pytest.raises(TypeError, match="to your Scheduler"):
        lightwork.BackgroundMiddleware(app, scheduler=lightwork.Scheduler(), max_concurrency=50)


# -- guide.md: limits and back-pressure -----------------------------------------------------------


def test_limits_queue_back_pressure_and_503(
    monkeypatch: pytest.MonkeyPatch, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    gate = threading.Event()

    async def held(address: str) -> None:
        await anyio.to_thread.run_sync(gate.wait, 5)
        limits.sent.append(address)

    monkeypatch.setattr(limits, "deliver", held)
    limits.sent.clear()
    bulk = [f"reader{n}@example.com" for n in range(102)]
    with TestClient(limits.app) as client:
        # Two run (limits["send-email"]), a hundred wait: the queue is full.
        client.post("/newsletter", json={"addresses": bulk}, headers={"X-Request-ID": "bulk"})
        status = client.get("/tasks").json()
        assert status["counts"]["added"] == 102
        assert status["counts"]["running"] == 2
        assert [(t["name"], t["route"]) for t in status["running"]] == [
            ("send-email", "POST /newsletter")
        ] * 2
        # One more task: add_task raises BackgroundQueueFull, answered with a 503.
        full = client.post("/signup", json={"email": "ada@example.com"})
        assert (full.status_code, full.headers["Retry-After"]) == (503, "1")
        [dropped] = events(logs, "background_task_dropped")
        assert dropped["task"] == "send-email"
        assert "queue is full (100 tasks waiting)" in dropped["reason"]
        # add_task_wait waits for room instead; it comes once the deliveries go on.
        late: list[httpx2.Response] = []
        sender = threading.Thread(
            target=lambda: late.append(
                client.post(
                    "/newsletter",
                    json={"addresses": ["late@example.com"]},
                    headers={"X-Request-ID": "late"},
                )
            )
        )
        sender.start()
        admission = limits.scheduler._admission
        assert admission is not None
        wait_in_thread(lambda: bool(admission.waiters))  # the late request waits for room
        assert len(lightwork_tasks.tasks) == 104  # the late task is made, and waits for room
        assert lightwork_tasks.tasks[-1].state is TaskState.PENDING
        gate.set()
        sender.join(5)
        lightwork_tasks.wait()
    assert late[0].status_code == 202
    assert sorted(limits.sent) == sorted([*bulk, "late@example.com"])
    # Each queued task ran in the context of the request that added it.
    completed = events(logs, "background_task_completed")
    assert sorted(e["request_id"] for e in completed) == ["bulk"] * 102 + ["late"]


def test_a_request_that_would_wait_for_its_own_room_hears_of_a_full_queue_at_once(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    # Room for two tasks: the newsletter's first two keep it until its response, so the
    # third could wait for nothing but this request's end. It is refused: a 503.
    app = Starlette(
        routes=limits.app.routes,
        middleware=[
            Middleware(
                lightwork.BackgroundMiddleware,
                scheduler=lightwork.Scheduler(max_concurrency=1, max_pending=1),
                run_if="success",  # a 503 gives the two back: the client sends all three again
            )
        ],
        exception_handlers=limits.app.exception_handlers,
    )
    with TestClient(app) as client:
        addresses = ["a@example.com", "b@example.com", "c@example.com"]
        response = client.post("/newsletter", json={"addresses": addresses})
        assert response.status_code == 503
        assert client.post("/newsletter", json={"addresses": addresses[:2]}).status_code == 202
        lightwork_tasks.wait()
    assert [task.state for task in lightwork_tasks.tasks] == [
        *[TaskState.DROPPED] * 3,
        *[TaskState.COMPLETED] * 2,
    ]
    reasons = [e["reason"] for e in events(logs, "background_task_dropped")]
    assert "it could not come while this request waits" in reasons[0]
    assert reasons[1:] == ["the response status was 503 (run_if='success')"] * 2


@pytest.mark.parametrize("overflow", ["reject", "wait", "drop"])
async def test_the_overflow_policies(overflow: lightwork.Overflow) -> None:
    gate = asyncio.Event()
    scheduler = lightwork.Scheduler(max_concurrency=1, max_pending=1, overflow=overflow)
    async with scheduler:
        scheduler.add_task(gate.wait())
        scheduler.add_task(gate.wait())
        if overflow == "drop":
            handle = scheduler.add_task(gate.wait())
            assert handle.state is TaskState.DROPPED
        else:
            hint = "add_task_wait" if overflow == "wait" else "raise max_pending"
            with pytest.raises(lightwork.BackgroundQueueFull, match=hint):
                scheduler.add_task(gate.wait())
        gate.set()


async def test_overflow_and_shutdown_send_offloadable_tasks_to_the_bridge(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    scheduler = overflow_offload.scheduler
    overflow_offload.offloaded_jobs.clear()
    offloaded_before = scheduler.counts()["offloaded"]  # counts run from the scheduler's making
    gate = asyncio.Event()
    transport = httpx2.ASGITransport(app=overflow_offload.app)
    await scheduler.start()
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        held = [scheduler.add_task(gate.wait(), name="held") for _ in range(4 + 20)]
        await client.post("/photos/cat")  # released into the full queue: offloaded
        [thumbnail] = [t for t in lightwork_tasks.tasks if t.name == "make_thumbnail"]
        assert thumbnail.state is TaskState.OFFLOADED
        error = thumbnail.exception()
        assert isinstance(error, lightwork.TaskOffloadedError)
        [job] = overflow_offload.offloaded_jobs
        assert error.job is job
        assert await job.result(timeout=30) == "cat-small.png"  # made in a worker process
        [offloaded] = events(logs, "background_task_offloaded")
        assert offloaded["job_id"] == job.job_id
        assert "queue is full (20 tasks waiting)" in offloaded["reason"]
        assert "offload make-thumbnail" in lightwork_tasks.names()  # the hand-off, a task too
        # At shutdown, pending_at_shutdown="spill" sends queued ones there too.
        for handle in held[4:]:
            handle.cancel()  # make room in the queue
        await client.post("/photos/dog")
        [dog] = [t for t in lightwork_tasks.tasks if t.name == "make_thumbnail"][1:]
        assert dog.state.value == "pending"  # waiting in the queue
        closing = asyncio.ensure_future(scheduler.aclose())
        await wait_until(dog.done)
        assert dog.state is TaskState.OFFLOADED
        gate.set()
        await closing
    [closed] = events(logs, "background_scheduler_closed")
    assert closed["offloaded"] - offloaded_before == 2


async def test_a_task_the_bridge_refuses_is_rejected_and_logged(logs: Logs) -> None:
    gate = asyncio.Event()
    scheduler = lightwork.Scheduler(
        max_concurrency=1,
        max_pending=1,
        overflow="offload",
        offload=lightwork.Offloader(MemoryBackend(), outbox=None),
    )
    async with scheduler:
        scheduler.add_task(gate.wait())
        scheduler.add_task(gate.wait())
        with pytest.raises(lightwork.BackgroundQueueFull):
            scheduler.add_task(overflow_offload.make_thumbnail, b"not JSON")  # type: ignore[call-overload]
        gate.set()
    [refused] = events(logs, "background_task_offload_refused")
    assert refused["log_level"] == "warning"
    assert "JSON" in refused["reason"]
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["task"] == "make_thumbnail"


# -- guide.md: shutdown -----------------------------------------------------------------------


@pytest.fixture
async def shutdown_client(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[httpx2.AsyncClient, asyncio.Event]]:
    """The shutdown example with its calls held until the test releases them."""
    gate = asyncio.Event()

    async def held(order_id: int) -> None:
        await gate.wait()

    for call in ("charge", "mail", "store"):
        monkeypatch.setattr(shutdown, call, held)
    for record in (shutdown.captured, shutdown.receipts, shutdown.audit_log):
        record.clear()
    transport = httpx2.ASGITransport(app=shutdown.app)
    await shutdown.scheduler.start()
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, gate
    await shutdown.scheduler.aclose()


async def test_shielded_tasks_outlive_the_drain(
    monkeypatch: pytest.MonkeyPatch,
    shutdown_client: tuple[httpx2.AsyncClient, asyncio.Event],
    lightwork_tasks: TaskRecorder,
    logs: Logs,
) -> None:
    client, gate = shutdown_client
    scheduler = shutdown.scheduler
    before = scheduler.counts()  # counts run from the scheduler's making
    monkeypatch.setattr(scheduler, "drain_timeout", 0.05)
    await client.post("/checkout/7")
    capture, receipt, audit = lightwork_tasks.tasks
    assert (capture.shield, receipt.shield, audit.shield) == (True, False, True)
    closing = asyncio.ensure_future(scheduler.aclose())
    await wait_until(receipt.done)  # cancelled at the drain deadline
    assert receipt.state is TaskState.CANCELLED
    assert not capture.done()
    assert not audit.done()
    with pytest.raises(lightwork.SchedulerClosedError):
        scheduler.add_task(shutdown.record_audit(8))
    gate.set()
    await closing
    assert (capture.state, audit.state) == (TaskState.COMPLETED, TaskState.COMPLETED)
    assert (shutdown.captured, shutdown.receipts, shutdown.audit_log) == ([7], [], [7])
    ends = [
        (e["event"], e.get("task"), e.get("reason"))
        for e in logs
        if e["event"] in ("background_task_cancelled", "background_scheduler_closed")
        or e["event"] == "background_task_completed"
    ]
    assert ends[0] == ("background_task_cancelled", "send_receipt", "shutdown")
    assert ends[-1] == ("background_scheduler_closed", None, None)
    [closed] = events(logs, "background_scheduler_closed")
    assert {key: closed[key] - before[key] for key in before} == {
        "added": 3,
        "running": 0,
        "completed": 2,
        "failed": 0,
        "timed_out": 0,
        "cancelled": 1,
        "dropped": 0,
        "offloaded": 0,
    }


@pytest.mark.parametrize(
    ("policy", "expected"), [("run", TaskState.COMPLETED), ("drop", TaskState.DROPPED)]
)
async def test_queued_tasks_at_shutdown_run_or_drop(
    monkeypatch: pytest.MonkeyPatch,
    shutdown_client: tuple[httpx2.AsyncClient, asyncio.Event],
    policy: str,
    expected: TaskState,
    logs: Logs,
) -> None:
    _, gate = shutdown_client
    scheduler = shutdown.scheduler
    monkeypatch.setattr(scheduler, "pending_at_shutdown", policy)
    running = [scheduler.add_task(gate.wait()) for _ in range(50)]  # max_concurrency
    queued = scheduler.add_task(shutdown.send_receipt(9))
    assert queued.state is TaskState.PENDING
    closing = asyncio.ensure_future(scheduler.aclose())
    await wait_until(lambda: "closing" in repr(scheduler))
    gate.set()  # slots free up during the drain
    await closing
    assert all(task.state is TaskState.COMPLETED for task in running)
    assert queued.state is expected
    if policy == "drop":
        [dropped] = events(logs, "background_task_dropped")
        assert "pending_at_shutdown='drop'" in dropped["reason"]


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


@pytest.mark.usefixtures("plain_structlog")
async def test_an_offloader_makes_the_debug_check_when_it_starts_too(
    lightwork_tasks: TaskRecorder,
) -> None:
    out = io.StringIO()
    logging_console.configure_console_logging(logging.INFO, file=out)
    backend = MemoryBackend()
    offloader = lightwork.Offloader(backend, outbox=None)
    async with lightwork.Scheduler(offload=offloader) as scheduler:
        async with offloader:
            logging_console.configure_console_logging(logging.DEBUG, file=out)  # too late
            scheduler.offload(offload_jobs.add, 1)
            await lightwork_tasks.join()
        assert len(backend.submissions) == 1
        assert "offload_enqueued" not in out.getvalue()
        async with offloader:  # started again, under the DEBUG configuration
            scheduler.offload(lightwork.Job(offload_jobs.add, 2), job_id="second")
            await lightwork_tasks.join()
    assert "job_id=second" in out.getvalue()


@pytest.fixture
def fallback_logging() -> Iterator[io.StringIO]:
    """The fallback example's configuration, undone afterwards."""
    out = io.StringIO()
    logger = logging.getLogger("lightwork")
    handlers = list(logger.handlers)
    logging_fallback.configure_logging(file=out)
    try:
        yield out
    finally:
        logger.handlers[:] = handlers
        logging_fallback.shipper.collector_up = True
        structlog.reset_defaults()


async def test_a_raising_processor_never_breaks_a_task(fallback_logging: io.StringIO) -> None:
    logging_fallback.shipper.collector_up = False
    async with lightwork.Scheduler() as scheduler:
        failed = scheduler.add_task(broken(), name="welcome-email")
        completed = scheduler.add_task(quick())
        with pytest.raises(ValueError, match="the mail server said no"):
            await failed
        assert await completed == "done"
    assert scheduler.counts()["failed"] == 1
    fallback = fallback_logging.getvalue().splitlines()
    assert fallback == [
        "ERROR lightwork: lightwork could not log background_task_failed (task welcome-email): "
        "ConnectionError: the log collector is unreachable",
        "ERROR lightwork: lightwork could not log background_scheduler_closed: "
        "ConnectionError: the log collector is unreachable",
    ]


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
