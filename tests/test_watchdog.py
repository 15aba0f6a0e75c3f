"""The loop watchdog: a stuck event loop is reported while it is still stuck, with a culprit."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from lightwork import BackgroundMiddleware, Scheduler
from tests.support import events

Logs = list[MutableMapping[str, Any]]


def stuck_until(released: threading.Event) -> None:
    """Hold the event loop (a blocking wait with no await) until the test releases it."""
    released.wait(5)


async def freeze_the_loop(released: threading.Event) -> None:
    stuck_until(released)


async def test_a_task_that_never_yields_is_reported_while_the_loop_is_stuck(logs: Logs) -> None:
    released = threading.Event()

    def release_once_reported() -> None:
        deadline = time.monotonic() + 5
        while not events(logs, "event_loop_blocked") and time.monotonic() < deadline:
            time.sleep(0.01)
        released.set()  # only the watchdog thread's report can get us here while stuck

    async with Scheduler(watchdog=0.05) as scheduler:
        helper = threading.Thread(target=release_once_reported)
        helper.start()
        handle = scheduler.add_task(freeze_the_loop, released)
        await handle
        helper.join()
    [report] = events(logs, "event_loop_blocked")
    assert report["task"] == "freeze_the_loop"
    assert report["task_id"] == handle.id
    assert report["stuck_ms"] >= 50
    assert "stuck_until" in report["stack"]
    assert report["gc_ms"] == 0
    assert "offload" in report["hint"]


async def test_a_stall_inside_a_garbage_collection_is_blamed_on_the_collector(
    logs: Logs,
) -> None:
    def wait_for_the_report() -> None:
        deadline = time.monotonic() + 5
        while not events(logs, "event_loop_blocked") and time.monotonic() < deadline:
            time.sleep(0.01)

    def long_collection(phase: str, info: dict[str, int]) -> None:
        # Stands for a full collection of a big heap: it holds the loop until reported.
        if phase == "start" and collecting.is_set():
            collecting.clear()
            wait_for_the_report()

    async def collect_garbage() -> None:
        collecting.set()
        gc.collect()

    collecting = threading.Event()
    async with Scheduler(watchdog=0.05) as scheduler:
        gc.callbacks.append(long_collection)  # after lightwork's own, which the start added
        try:
            await scheduler.add_task(collect_garbage)
        finally:
            gc.callbacks.remove(long_collection)
    [report] = events(logs, "event_loop_blocked")
    assert report["task"] == "collect_garbage"
    assert report["gc_ms"] >= 50
    assert "garbage collector" in report["hint"]
    assert scheduler.counts()["completed"] == 1


def test_a_request_handler_that_blocks_is_named_by_its_route(logs: Logs) -> None:
    async def report(request: Request) -> Response:
        deadline = time.monotonic() + 5
        while not events(logs, "event_loop_blocked") and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 -- blocking the loop is the point here
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/report", report)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=Scheduler(watchdog=0.05))],
    )
    with TestClient(app) as client:
        assert client.get("/report").text == "done"
    [blocked] = events(logs, "event_loop_blocked")
    assert blocked["task"] is None
    assert blocked["route"] == "GET /report"
    assert "in report" in blocked["stack"]


async def test_a_loop_that_waits_politely_is_never_reported(logs: Logs) -> None:
    async with Scheduler(watchdog=0.05) as scheduler:
        handles = [scheduler.add_task(asyncio.sleep(0.3)) for _ in range(10)]
        for handle in handles:
            await handle
    assert events(logs, "event_loop_blocked") == []
    assert "stopped" in repr(scheduler.watchdog)


def test_the_watchdog_threshold_is_checked() -> None:
    with pytest.raises(ValueError, match="watchdog must be a positive"):
        Scheduler(watchdog=0)
