"""Faults that must not break anything (issue 5): each is contained, and every task ends once.

One test per fault: a task that raises, swallows its cancellation or never ends; a callback
that raises or hangs; a logger that raises; ``add_task`` after shutdown began or from other
threads; a client that disconnects mid-request (real uvicorn); a handler that raises after
adding tasks; thousands of tasks failing at once.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections import Counter
from collections.abc import Iterator, MutableMapping
from typing import Any, Literal

import pytest
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message
from structlog.testing import LogCapture
from structlog.typing import EventDict, WrappedLogger

import lightwork
from lightwork import BackgroundMiddleware, Scheduler, SchedulerClosedError, TaskState
from lightwork._core import _shutdown as shutdown_module
from lightwork.testing import TaskRecorder
from tests.http_server import serving
from tests.outcomes import TERMINAL_EVENTS, assert_each_ended_once, ends_by_task
from tests.support import events, wait_until

Logs = list[MutableMapping[str, Any]]

BOUND_S = 10.0
"""A deadline for what must end by itself (a shutdown, a wait): never a speed limit."""


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


class TaskBug(Exception):
    """What the tasks in these tests raise."""


class HandlerBug(Exception):
    """What the request handlers in these tests raise."""


def make_app(*routes: Route, **options: Any) -> Starlette:
    return Starlette(routes=list(routes), middleware=[Middleware(BackgroundMiddleware, **options)])


def closed_summary(logs: Logs) -> MutableMapping[str, Any]:
    [closed] = events(logs, "background_scheduler_closed")
    return closed


def assert_counts_add_up(counts: MutableMapping[str, Any]) -> None:
    ended = sum(counts[state.value] for state in TERMINAL_EVENTS.values())
    assert counts["added"] == counts["running"] + counts.get("pending", 0) + ended, counts


# -- the task itself -------------------------------------------------------------------------


async def raise_value_error() -> None:
    await asyncio.sleep(0)
    raise TaskBug("a task bug")


async def raise_group() -> None:
    await asyncio.sleep(0)
    raise ExceptionGroup("several bugs", [TaskBug("one"), KeyError("two")])


def raise_in_a_thread() -> None:
    raise TaskBug("a bug in sync code")


@pytest.mark.parametrize("target", [raise_value_error, raise_group, raise_in_a_thread])
async def test_a_task_that_raises_fails_once_and_nothing_else_notices(
    target: Any, logs: Logs
) -> None:
    seen: list[BaseException] = []
    async with Scheduler() as scheduler:
        neighbour = scheduler.add_task(double, 1)
        failing = scheduler.add_task(target)
        coro = target() if inspect.iscoroutinefunction(target) else asyncio.to_thread(target)
        failing_with_callback = scheduler.add_task(coro, on_error=seen.append)
        for handle in (failing, failing_with_callback):
            with pytest.raises((TaskBug, ExceptionGroup)):
                await handle
        assert await neighbour == 2
        assert await scheduler.add_task(double, 2) == 4  # still accepting and running
    assert [type(e) for e in seen] == [type(failing.exception())]
    assert failing.state is failing_with_callback.state is TaskState.FAILED
    reports = {e["task_id"]: e for e in events(logs, "background_task_failed")}
    assert reports[failing.id]["exc_info"] is failing.exception()
    assert reports[failing_with_callback.id]["exc_info"] is seen[0]
    assert all(e["log_level"] == "error" for e in reports.values())
    assert_each_ended_once([neighbour, failing, failing_with_callback], logs)
    assert_counts_add_up(closed_summary(logs))


async def test_a_task_that_swallows_cancellation_is_reported_abandoned_and_shutdown_ends(
    logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutdown_module, "CANCEL_GRACE_S", 0.05)
    give_up = asyncio.Event()
    cancellations = 0

    async def swallow_every_cancellation() -> str:
        nonlocal cancellations
        while not give_up.is_set():
            try:
                await give_up.wait()
            except asyncio.CancelledError:
                cancellations += 1
        return "ended when it chose to"

    scheduler = Scheduler(drain_timeout=0.05)
    await scheduler.start()
    stubborn = scheduler.add_task(swallow_every_cancellation)
    polite = scheduler.add_task(asyncio.sleep(3600), name="polite")
    try:
        async with asyncio.timeout(BOUND_S):
            await scheduler.aclose()
    finally:
        give_up.set()
    assert cancellations == 1  # shutdown asked once, then stopped waiting for it
    assert polite.state is TaskState.CANCELLED
    assert stubborn.state is TaskState.RUNNING
    [abandoned] = events(logs, "background_task_abandoned")
    assert (abandoned["task"], abandoned["task_id"]) == ("swallow_every_cancellation", stubborn.id)
    assert abandoned["log_level"] == "error"
    summary = closed_summary(logs)
    assert (summary["running"], summary["cancelled"]) == (1, 1)
    assert_counts_add_up(summary)
    # When it does end, its end is still logged, once.
    assert await stubborn == "ended when it chose to"
    assert_each_ended_once([stubborn, polite], logs)


async def test_a_task_that_never_ends_times_out(logs: Logs) -> None:
    seen: list[BaseException] = []

    async def wait_forever() -> None:
        await asyncio.Event().wait()

    async with Scheduler() as scheduler:
        handle = scheduler.add_task(wait_forever(), timeout=0.05, on_error=seen.append)
        with pytest.raises(lightwork.TaskTimeoutError, match=r"timeout of 0\.05s"):
            await handle
        assert scheduler.running == 0
    assert handle.state is TaskState.TIMED_OUT
    assert seen == [handle.exception()]
    [timed_out] = events(logs, "background_task_timed_out")
    assert (timed_out["task"], timed_out["timeout_s"]) == ("wait_forever", 0.05)
    assert_each_ended_once([handle], logs)


# -- callbacks ---------------------------------------------------------------------------


async def test_a_callback_that_raises_is_logged_and_changes_nothing_else(logs: Logs) -> None:
    def broken(value: object) -> None:
        raise RuntimeError("sync callback bug")

    async def broken_async(value: object) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async callback bug")

    async with Scheduler() as scheduler:
        completed = scheduler.add_task(double(1), on_complete=broken)
        failed = scheduler.add_task(raise_value_error(), on_error=broken_async)
        assert await completed == 2
        with pytest.raises(TaskBug):
            await failed
        await wait_until(lambda: len(events(logs, "background_callback_failed")) == 2)
        assert await scheduler.add_task(double, 3) == 6
    reports = {e["task_id"]: e for e in events(logs, "background_callback_failed")}
    assert str(reports[completed.id]["exc_info"]) == "sync callback bug"
    assert reports[completed.id]["callback"].endswith("broken")
    assert str(reports[failed.id]["exc_info"]) == "async callback bug"
    assert reports[failed.id]["log_level"] == "error"
    assert (completed.state, failed.state) == (TaskState.COMPLETED, TaskState.FAILED)
    assert_each_ended_once([completed, failed], logs)


@pytest.mark.parametrize("stubborn", [False, True], ids=["hangs", "hangs-and-swallows-cancel"])
async def test_a_callback_that_hangs_is_cancelled_at_shutdown_which_still_ends(
    stubborn: bool, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutdown_module, "CANCEL_GRACE_S", 0.05)
    entered, give_up = asyncio.Event(), asyncio.Event()
    cancellations = 0

    async def hang(value: object) -> None:
        nonlocal cancellations
        entered.set()
        while not give_up.is_set():
            try:
                await give_up.wait()
            except asyncio.CancelledError:
                cancellations += 1
                if not stubborn:
                    raise

    with TaskRecorder() as recorder:
        scheduler = Scheduler(drain_timeout=0.05)
        await scheduler.start()
        handle = scheduler.add_task(double(1), on_complete=hang)
        await entered.wait()
        try:
            async with asyncio.timeout(BOUND_S):
                await scheduler.aclose()
        finally:
            give_up.set()
        await recorder.join(BOUND_S)
    assert cancellations == 1
    assert handle.state is TaskState.COMPLETED  # the task's own end is untouched
    assert_each_ended_once([handle], logs)
    assert_counts_add_up(closed_summary(logs))


# -- a logger that raises ------------------------------------------------------------------


@pytest.fixture
def failing_events() -> Iterator[set[str]]:
    """Make structlog's processor chain raise on the events whose names the test puts in the set.

    The events that pass are captured, as by the ``logs`` fixture, in ``capture.entries``.
    """
    failing: set[str] = set()
    capture = LogCapture()

    def explode(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if any(event_dict["event"].startswith(prefix) for prefix in failing):
            raise RuntimeError(f"a broken log processor, on {event_dict['event']}")
        return event_dict

    structlog.configure(processors=[structlog.contextvars.merge_contextvars, explode, capture])
    try:
        yield failing
    finally:
        structlog.reset_defaults()


async def test_a_logger_that_raises_does_not_stop_the_scheduler_starting_or_closing(
    failing_events: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    failing_events.add("background_scheduler_")
    scheduler = Scheduler()
    async with asyncio.timeout(BOUND_S):
        await scheduler.start()
        handle = scheduler.add_task(double, 1)
        await scheduler.aclose()
    assert handle.result() == 2
    reports = fallback_reports(caplog)
    assert [r.split(":")[0] for r in reports] == [
        "lightwork could not log background_scheduler_started",
        "lightwork could not log background_scheduler_closed",
    ]


def fallback_reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return what lightwork told stdlib logging because structlog raised."""
    return [r.getMessage() for r in caplog.records if r.name == "lightwork"]


async def test_a_logger_that_raises_does_not_keep_tasks_from_ending(
    failing_events: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    async with Scheduler() as scheduler:
        failing_events.add("background_task_")
        completed = scheduler.add_task(double, 1)
        failed = scheduler.add_task(raise_value_error())
        cancelled = scheduler.add_task(asyncio.sleep(3600))
        cancelled.cancel()
        async with asyncio.timeout(1):  # an end that is never reported would hang here
            assert await completed == 2
            with pytest.raises(TaskBug):
                await failed
            with pytest.raises(lightwork.TaskCancelledError):
                await cancelled
        counts = scheduler.counts()
        assert (counts["completed"], counts["failed"], counts["cancelled"]) == (1, 1, 1)
        failing_events.clear()
        assert await scheduler.add_task(double, 2) == 4  # and the scheduler goes on
    # Each end that structlog could not take is told to stdlib logging instead, once.
    assert sorted(fallback_reports(caplog)) == [
        f"lightwork could not log background_task_{state} (task {name}): RuntimeError: "
        f"a broken log processor, on background_task_{state}"
        for state, name in [
            ("cancelled", "sleep"),
            ("completed", "double"),
            ("failed", "raise_value_error"),
        ]
    ]


def test_a_logger_that_raises_does_not_reach_the_request(
    failing_events: set[str], lightwork_tasks: TaskRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    async def raises_after_adding(request: Request) -> Response:
        lightwork.get_background(request).add_task(double, 1)
        raise HandlerBug("the handler's own bug")

    async def not_found_after_adding(request: Request) -> Response:
        lightwork.get_background(request).add_task(double(2), run_if="success")
        return PlainTextResponse("gone", status_code=404)

    app = make_app(Route("/raises", raises_after_adding), Route("/404", not_found_after_adding))
    with TestClient(app) as client:
        failing_events.add("background_task_")
        # The client sees the app's own outcome; the drop's log failure stays lightwork's.
        assert client.get("/404").status_code == 404
        with pytest.raises(HandlerBug):
            client.get("/raises")
        lightwork_tasks.wait(BOUND_S)
    assert [h.state for h in lightwork_tasks.tasks] == [TaskState.DROPPED, TaskState.DROPPED]
    assert len(fallback_reports(caplog)) == 2


# -- adding tasks at the wrong time or from the wrong place ----------------------------


async def test_adding_a_task_once_shutdown_began_raises_a_clear_error(logs: Logs) -> None:
    errors: list[SchedulerClosedError] = []
    shutting_down = asyncio.Event()
    scheduler = Scheduler(drain_timeout=BOUND_S)

    async def add_a_follow_up_during_the_drain() -> None:
        await shutting_down.wait()
        follow_up = double(2)
        try:
            scheduler.add_task(follow_up)
        except SchedulerClosedError as exc:
            errors.append(exc)
        assert inspect.getcoroutinestate(follow_up) == inspect.CORO_CLOSED
        try:  # from a thread too
            await asyncio.to_thread(scheduler.add_task, double, 3)
        except SchedulerClosedError as exc:
            errors.append(exc)

    await scheduler.start()
    draining = scheduler.add_task(add_a_follow_up_during_the_drain)
    closing = asyncio.create_task(scheduler.aclose())
    await wait_until(lambda: "closing" in repr(scheduler))
    shutting_down.set()
    async with asyncio.timeout(BOUND_S):
        await closing
    assert draining.state is TaskState.COMPLETED  # the drain let it finish
    assert len(errors) == 2
    for error in errors:
        assert "closing" in str(error)
        assert "before the app's shutdown begins" in str(error)
    with pytest.raises(SchedulerClosedError, match="closed"):
        scheduler.add_task(double, 4)
    assert_each_ended_once([draining], logs)
    assert closed_summary(logs)["added"] == 1  # the refused tasks were never accepted


async def test_tasks_added_from_many_threads_at_once_all_run(logs: Logs) -> None:
    threads, per_thread = 4, 250
    all_waiting = threading.Barrier(threads)

    def add_many(scheduler: Scheduler, first: int) -> list[lightwork.TaskHandle[int]]:
        all_waiting.wait(BOUND_S)
        return [scheduler.add_task(double, first + i) for i in range(per_thread)]

    async with Scheduler() as scheduler:
        batches = await asyncio.gather(
            *(asyncio.to_thread(add_many, scheduler, k * per_thread) for k in range(threads))
        )
        handles = [handle for batch in batches for handle in batch]
        results = [await handle for handle in handles]
    assert sorted(results) == [2 * i for i in range(threads * per_thread)]
    assert len({h.id for h in handles}) == threads * per_thread
    assert_each_ended_once(handles, logs)
    summary = closed_summary(logs)
    assert (summary["added"], summary["completed"]) == (threads * per_thread,) * 2


async def test_adding_from_a_thread_to_a_scheduler_that_is_not_running_says_so() -> None:
    scheduler = Scheduler()
    with pytest.raises(SchedulerClosedError, match="not running: start it first"):
        await asyncio.to_thread(scheduler.add_task, double, 1)


async def test_a_task_handed_over_from_a_thread_just_before_shutdown_is_not_lost(
    logs: Logs,
) -> None:
    scheduler = Scheduler()
    await scheduler.start()
    added: list[lightwork.TaskHandle[int]] = []
    adder = threading.Thread(target=lambda: added.append(scheduler.add_task(double, 1)))
    adder.start()
    adder.join(BOUND_S)  # holds the loop: the hand-off is still queued when shutdown begins
    await scheduler.aclose()
    [handle] = added
    assert handle.done(), f"{handle!r} outlived its scheduler's shutdown"
    assert_each_ended_once(added, logs)
    assert_counts_add_up(closed_summary(logs))


async def test_a_task_a_thread_adds_under_limits_just_before_shutdown_is_run(logs: Logs) -> None:
    """Under a ``max_pending`` the thread waits for the loop's answer; a shutdown that begins
    meanwhile waits for the task, as for one handed over without limits."""
    scheduler = Scheduler(max_pending=4)
    await scheduler.start()
    added: list[lightwork.TaskHandle[int]] = []
    adder = threading.Thread(target=lambda: added.append(scheduler.add_task(double, 1)))
    adder.start()
    adder.join(0.5)  # holds the loop: the thread's call still waits in its queue as shutdown begins
    await scheduler.aclose()
    adder.join(BOUND_S)
    [handle] = added
    assert handle.state is TaskState.COMPLETED, f"{handle!r} was not run by the drain"
    assert handle.result() == 2
    assert_each_ended_once(added, logs)


def test_a_thread_of_the_apps_own_is_told_when_the_loop_stops_before_keeping_room(
    logs: Logs,
) -> None:
    """A request's task added from a thread the app started (none of anyio's workers) waits
    for the loop to keep its room; a loop that stops and closes first never will: the thread
    hears so, and the task is dropped, rather than the thread waiting forever."""
    scheduler = Scheduler(max_pending=4)  # a limit: room is kept on the loop
    outcome: list[object] = []
    adders: list[threading.Thread] = []

    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)

        def add() -> None:
            try:
                outcome.append(background.add_task(double, 1))
            except SchedulerClosedError as exc:
                outcome.append(exc)

        adders.append(threading.Thread(target=add, daemon=True))  # not to outlive a failure
        adders[0].start()
        adders[0].join(0.5)  # holds the loop: the thread's call is still queued when it stops
        asyncio.get_running_loop().stop()
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
    )

    async def one_request() -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            pass

        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
        await scheduler.start()  # as the app's lifespan would
        await app(scope, receive, send)
        await asyncio.sleep(BOUND_S)  # stopped before this ends

    loop = asyncio.new_event_loop()
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
        loop.run_until_complete(one_request())
    loop.close()  # what the thread asked the loop to do is never done now
    adders[0].join(BOUND_S)
    assert not adders[0].is_alive(), "the thread still waits for a loop that has closed"
    [error] = outcome
    assert isinstance(error, SchedulerClosedError)
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["task"] == "double"
    assert "added from a thread" in dropped["reason"]


# -- requests ---------------------------------------------------------------------------


def three_tasks(request: Request) -> None:
    """Add one task per run_if: the middleware's default, then 'success', then 'always'."""
    background = lightwork.get_background(request)
    background.add_task(double(1), name="default")
    background.add_task(double(2), name="success", run_if="success")
    background.add_task(double(3), name="always", run_if="always")


def raw_request(base_url: str, request: bytes) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=BOUND_S)
    client.sendall(request)
    return client


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # The handler reads the body while the client goes: Starlette raises ClientDisconnect.
        ("reading-the-body", ["dropped", "dropped", "completed"]),
        # The handler had the body, then answers 404 to a client that has gone.
        ("after-the-body", ["completed", "dropped", "completed"]),
    ],
)
def test_a_client_that_disconnects_mid_request_leaves_each_task_one_end(
    loop: Literal["asyncio", "uvloop"],
    when: str,
    expected: list[str],
    logs: Logs,
    lightwork_tasks: TaskRecorder,
) -> None:
    added = threading.Event()

    async def upload(request: Request) -> Response:
        three_tasks(request)
        added.set()
        if when == "reading-the-body":
            await request.body()  # the client sent 5 of 10 bytes, then went
        else:
            await request.body()
            assert (await request.receive())["type"] == "http.disconnect"
        return PlainTextResponse("too late", status_code=404)

    app = make_app(Route("/upload", upload, methods=["POST"]))
    body = b"12345" if when == "reading-the-body" else b"1234567890"
    head = b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n"
    with serving(app, loop) as base_url:
        client = raw_request(base_url, head + body)
        try:
            assert added.wait(BOUND_S), "the handler never ran"
        finally:
            client.close()
        lightwork_tasks.wait(BOUND_S)
    assert [h.name for h in lightwork_tasks.tasks] == ["default", "success", "always"]
    assert [h.state.value for h in lightwork_tasks.tasks] == expected
    assert_each_ended_once(lightwork_tasks.tasks, logs)
    if when == "reading-the-body":
        reasons = {e["reason"] for e in events(logs, "background_task_dropped")}
        assert reasons == {"the request raised ClientDisconnect"}


@pytest.mark.parametrize("start", ["after_response", "immediately"])
def test_a_handler_that_raises_after_adding_tasks(
    start: str, logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    async def endpoint(request: Request) -> Response:
        three_tasks(request)
        raise HandlerBug("after adding tasks")

    app = make_app(Route("/", endpoint), start=start)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 500
        lightwork_tasks.wait(BOUND_S)
        assert client.get("/", params={"again": 1}).status_code == 500  # the app goes on
        lightwork_tasks.wait(BOUND_S)
    states = [h.state.value for h in lightwork_tasks.tasks]
    if start == "after_response":  # never started: only run_if="always" runs
        assert states == ["dropped", "dropped", "completed"] * 2
        reasons = {e["reason"] for e in events(logs, "background_task_dropped")}
        assert reasons == {"the request raised HandlerBug"}
    else:  # already running when the handler raised: they go on
        assert states == ["completed"] * 6
    assert_each_ended_once(lightwork_tasks.tasks, logs)
    assert_counts_add_up(closed_summary(logs))


# -- many at once ------------------------------------------------------------------------


async def test_thousands_of_tasks_failing_at_once_are_each_logged_failed_once(
    logs: Logs,
) -> None:
    count = 5_000
    go = asyncio.Event()
    seen: list[BaseException] = []

    async def fail_together(i: int) -> None:
        await go.wait()
        raise TaskBug(f"failure {i}")

    async with Scheduler(slow_threshold=None) as scheduler:
        handles = [scheduler.add_task(fail_together(i), on_error=seen.append) for i in range(count)]
        go.set()  # every one fails in the same turn of the loop
        outcomes = await asyncio.gather(*handles, return_exceptions=True)
        assert scheduler.running == 0
        assert await scheduler.add_task(double, 21) == 42  # and it keeps working
    assert all(isinstance(o, TaskBug) for o in outcomes)
    assert len(seen) == count
    failed = Counter(e["task_id"] for e in events(logs, "background_task_failed"))
    assert set(failed) == {h.id for h in handles}
    assert set(failed.values()) == {1}
    assert len(ends_by_task(logs)) == count + 1
    summary = closed_summary(logs)
    assert (summary["failed"], summary["completed"]) == (count, 1)
    assert_counts_add_up(summary)
