"""The loop watchdog: it samples the tasks that hold the event loop, and reports a stuck loop
while it is still stuck, with a culprit."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from lightwork import BackgroundMiddleware, Scheduler
from lightwork._core._logging import BLOCKING_HINT, CPU_WAIT_HINT
from tests.support import events, spin, wrong_type

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
        # Right after a beat, so that the stall is the collection's from its start: begun an
        # interval or more after the beat (a busy machine), it would be under 50 ms when
        # the stall is reported at 50.
        assert scheduler.watchdog is not None
        beat = scheduler.watchdog._last_beat
        while scheduler.watchdog._last_beat == beat:
            await asyncio.sleep(0)
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


async def test_a_collection_that_holds_the_gil_is_still_blamed_on_the_collector(
    logs: Logs,
) -> None:
    # A real collection holds the GIL: the watchdog's thread only gets to look as it ends.
    def gil_holding_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and collecting.is_set():
            collecting.clear()
            sum(range(terms))  # one call into C, which keeps the GIL until it returns

    started = time.perf_counter()
    sum(range(1_000_000))
    terms = int(1_000_000 * 0.2 / (time.perf_counter() - started))  # about 0.2 s of it

    async def collect_garbage() -> None:
        collecting.set()
        gc.collect()

    collecting = threading.Event()
    async with Scheduler(watchdog=0.05, block_threshold=None) as scheduler:
        gc.callbacks.append(gil_holding_collection)
        try:
            await scheduler.add_task(collect_garbage)
            await asyncio.sleep(0.1)  # the watchdog's next look
        finally:
            gc.callbacks.remove(gil_holding_collection)
    reports = events(logs, "event_loop_blocked")
    assert reports, "the stall was not reported"
    assert all(report["task"] == "collect_garbage" for report in reports)
    assert all("garbage collector" in report["hint"] for report in reports)
    assert max(report["gc_ms"] for report in reports) >= 50


async def test_a_collection_in_another_thread_is_not_taken_off_a_blocking_step(
    logs: Logs,
) -> None:
    def slow_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and threading.current_thread() is worker:
            time.sleep(0.15)  # the worker's collection: the loop thread goes on meanwhile

    async def blocking_call() -> None:
        worker.start()  # collects while this step blocks the loop
        time.sleep(0.3)  # noqa: ASYNC251 -- the blocking call under test

    async def a_loop_that_ends() -> None:
        async with Scheduler():  # its thread counts its collections, until it ends
            pass

    ended = threading.Thread(target=asyncio.run, args=(a_loop_that_ends(),))
    ended.start()
    ended.join(5)
    worker = threading.Thread(target=gc.collect)  # may well get the ended thread's id
    async with Scheduler(block_threshold=0.1) as scheduler:
        gc.callbacks.append(slow_collection)
        try:
            handle = scheduler.add_task(blocking_call())
            await handle
        finally:
            gc.callbacks.remove(slow_collection)
            worker.join(5)
    # Sampled, right to half a beat interval; the worker's 150 ms collection is not taken off.
    assert handle.longest_step >= 0.28
    [blocking] = events(logs, "background_task_blocking")
    assert blocking["blocked_ms"] >= 280


def test_a_watchdog_started_on_first_use_stops_with_its_loop(logs: Logs) -> None:
    async def add_one() -> None:
        scheduler.add_task(asyncio.sleep(0))  # starts the scheduler, and its watchdog

    scheduler = Scheduler(watchdog=0.05)
    asyncio.run(add_one())  # the loop ends; no lifespan closes the scheduler
    watchdog = scheduler.watchdog
    assert watchdog is not None
    assert watchdog._thread is not None
    watchdog._thread.join(5)
    assert not watchdog._thread.is_alive()
    assert events(logs, "event_loop_blocked") == []


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


def test_a_plain_asyncio_task_that_blocks_is_not_blamed_on_the_request_that_made_it(
    logs: Logs,
) -> None:
    spawned: set[asyncio.Task[None]] = set()

    async def hold_the_loop() -> None:
        await asyncio.sleep(0)  # after the request's own step
        deadline = time.monotonic() + 5
        while not events(logs, "event_loop_blocked") and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 -- blocking the loop is the point here

    async def endpoint(request: Request) -> Response:
        task = asyncio.get_running_loop().create_task(hold_the_loop())
        spawned.add(task)
        task.add_done_callback(spawned.discard)
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/spawn", endpoint)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=Scheduler(watchdog=0.05))],
    )
    with TestClient(app) as client:
        client.get("/spawn")
        assert client.portal is not None
        deadline = time.monotonic() + 5
        while spawned and time.monotonic() < deadline:
            client.portal.call(asyncio.sleep, 0.01)
    [blocked] = events(logs, "event_loop_blocked")
    assert (blocked["task"], blocked["route"]) == (None, None)
    assert "in hold_the_loop" in blocked["stack"]


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


def test_a_stall_is_never_blamed_on_a_task_stepping_on_another_loop(logs: Logs) -> None:
    other_loop_steps, released = threading.Event(), threading.Event()

    async def step_on_the_other_loop() -> None:
        other_loop_steps.set()
        released.wait(5)  # holds only its own loop

    async def other_loop() -> None:
        async with Scheduler(block_threshold=None) as scheduler:
            await scheduler.add_task(step_on_the_other_loop(), name="elsewhere")

    async def watched_loop() -> None:
        async with Scheduler(watchdog=0.05):
            other_loop_steps.wait(5)
            try:
                time.sleep(0.3)  # noqa: ASYNC251 -- this loop's own code holds it
            finally:
                released.set()

    other = threading.Thread(target=asyncio.run, args=(other_loop(),))
    other.start()
    try:
        asyncio.run(watched_loop())
    finally:
        released.set()
        other.join(5)
    [report] = events(logs, "event_loop_blocked")
    assert report["task"] is None


def test_sampling_names_the_task_that_holds_the_loop_with_its_request_and_stack(
    logs: Logs,
) -> None:
    async def crunch() -> None:
        spin(0.1)

    async def endpoint(request: Request) -> Response:
        request.state.background.add_task(crunch)
        return PlainTextResponse("accepted")

    scheduler = Scheduler()  # the default: sampling, at block_threshold=0.02
    app = Starlette(
        routes=[Route("/crunch", endpoint)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
    )
    with TestClient(app) as client:
        client.get("/crunch", headers={"X-Request-ID": "r-42"})
    [blocking] = events(logs, "background_task_blocking")
    assert (blocking["task"], blocking["route"]) == ("crunch", "GET /crunch")
    assert blocking["request_id"] == "r-42"  # from the task's context, though it has ended
    assert 90 <= blocking["blocked_ms"] <= 130
    assert blocking["threshold_ms"] == 20.0
    assert "in spin" in blocking["stack"]
    assert scheduler.stats()["totals"]["blocking"] == 1


@pytest.mark.parametrize(
    ("hold", "seconds"),
    [("sleep", 0.03), ("spin", 0.1), ("sleep", 1.0)],
)
async def test_sampling_finds_a_task_that_holds_the_loop_and_how_long(
    logs: Logs, hold: str, seconds: float
) -> None:
    async def holds() -> None:
        (spin if hold == "spin" else time.sleep)(seconds)

    async def waits() -> None:
        await asyncio.sleep(0.15)  # long, but it lets the loop go

    async with Scheduler() as scheduler:
        held, waited = scheduler.add_task(holds()), scheduler.add_task(waits())
        await held
        await waited
    [blocking] = events(logs, "background_task_blocking")
    assert blocking["task_id"] == held.id
    # Right to half a beat interval (2.5 ms), and a few ms for the thread to get the GIL.
    assert seconds - 0.005 <= held.longest_step == held.blocked <= seconds * 1.05 + 0.01
    assert waited.blocked == 0.0


async def test_a_task_that_lets_the_loop_go_in_time_is_not_charged(logs: Logs) -> None:
    async def short_steps() -> None:
        for _ in range(20):
            time.sleep(0.005)  # noqa: ASYNC251 -- 5 ms at a time: under the threshold
            await asyncio.sleep(0.001)

    async with Scheduler() as scheduler:
        handle = scheduler.add_task(short_steps())
        await handle
    assert events(logs, "background_task_blocking") == []
    assert handle.blocked == 0.0


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/thread-self/schedstat").exists() or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's schedstat, and a second CPU for the watchdog's thread",
)
def test_a_loop_kept_waiting_for_a_cpu_on_a_busy_machine_charges_no_task_and_says_so() -> None:
    run = subprocess.run(  # the loop's thread starved in a process of its own
        [sys.executable, "-m", "tests.starved_loop"],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["waited"] > 0.2  # the loop's thread was kept off a CPU, for long
    blocking = [e for e in result["events"] if e["event"] == "background_task_blocking"]
    stuck = [e for e in result["events"] if e["event"] == "event_loop_blocked"]

    # `polite` computed 5 ms at a time: never charged, however late its steps ended.
    assert result["blocked"]["polite"] == 0.0
    assert [e["task"] for e in blocking] == ["rude"]
    # The loop did stall while it ran, past the watchdog's 50 ms: reported, and the wait for
    # a CPU named as the cause (a wait still going on is known only once it ends: a report
    # made in the middle of one may not tell).
    assert CPU_WAIT_HINT in [e["hint"] for e in stuck if e["task"] == "polite"]

    # `rude` then slept 150 ms without awaiting: its own hold, charged.
    assert 0.1 <= result["blocked"]["rude"] < 0.2
    assert 100 <= blocking[0]["blocked_ms"] < 200
    [rude_stuck] = [e for e in stuck if e["task"] == "rude"]
    assert rude_stuck["hint"] == BLOCKING_HINT


def test_only_what_asks_for_it_runs_a_watchdog_thread() -> None:
    assert Scheduler().watchdog is not None  # sampling, by default
    assert Scheduler(time_steps=True).watchdog is None  # each step timed instead
    assert Scheduler(block_threshold=None).watchdog is None  # nothing to report
    stuck_only = Scheduler(time_steps=True, watchdog=0.25).watchdog
    assert stuck_only is not None
    assert (stuck_only.threshold_s, stuck_only.sample_s) == (0.25, None)
    with pytest.raises(TypeError, match=wrong_type("time_steps must be a bool")):
        Scheduler(time_steps="yes")  # type: ignore[arg-type]
