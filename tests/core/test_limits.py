"""Limits and back-pressure: concurrency, the queue, overflow policies, and shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import lightwork
from lightwork import BackgroundMiddleware, BackgroundQueueFull, Offloader, Scheduler, TaskState
from lightwork.backends import MemoryBackend
from lightwork.testing import TaskRecorder
from tests import offload_jobs
from tests.support import events, wait_until

Logs = list[MutableMapping[str, Any]]
tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="-")


async def wait_for(gate: asyncio.Event) -> str:
    await gate.wait()
    return tenant.get()


def get_once(
    endpoint: Callable[[Request], Awaitable[Response]],
    scheduler: Scheduler,
    tasks: TaskRecorder,
) -> None:
    """Serve *endpoint* under the middleware, GET it once, and wait for the tasks it added."""
    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
    )
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        tasks.wait()


async def test_max_concurrency_queues_the_rest_in_order() -> None:
    gate = asyncio.Event()
    started: list[int] = []

    async def job(n: int) -> None:
        started.append(n)
        await gate.wait()

    async with Scheduler(max_concurrency=2) as scheduler:
        handles = [scheduler.add_task(job, n) for n in range(5)]
        await wait_until(lambda: len(started) == 2)
        assert [h.state for h in handles] == [TaskState.RUNNING] * 2 + [TaskState.PENDING] * 3
        assert scheduler.running == 2
        gate.set()
        for handle in handles:
            await handle
    assert started == [0, 1, 2, 3, 4]


async def test_a_per_name_limit_holds_that_name_back_only() -> None:
    gate = asyncio.Event()
    async with Scheduler(limits={"email": 1}) as scheduler:
        first = scheduler.add_task(wait_for(gate), name="email")
        second = scheduler.add_task(wait_for(gate), name="email")
        other = scheduler.add_task(wait_for(gate), name="report")
        await asyncio.sleep(0)
        assert (first.state, second.state, other.state) == (
            TaskState.RUNNING, TaskState.PENDING, TaskState.RUNNING,
        )  # fmt: skip
        gate.set()
        await asyncio.gather(first, second, other)


async def test_queued_tasks_start_oldest_first_passing_a_name_held_back_by_its_limit() -> None:
    labels = ("email1", "email2", "report1", "report2", "report3", "email3", "report4")
    gates = {label: asyncio.Event() for label in labels}
    started: list[str] = []

    async def job(label: str) -> None:
        started.append(label)
        await gates[label].wait()

    async def end(label: str) -> None:
        count = len(started)
        gates[label].set()
        await wait_until(lambda: len(started) > count)  # the task that takes its slot

    async with Scheduler(max_concurrency=2, limits={"email": 1}) as scheduler:
        for label in labels:
            scheduler.add_task(job(label), name=label.rstrip("123"))
        await wait_until(lambda: len(started) == 2)
        await end("report1")  # email2 waits on its name's limit: report2 passes it
        await end("email1")
        await end("email2")  # report3 was added before email3
        await end("report2")  # email3 before report4
        for gate in gates.values():
            gate.set()
    assert started == [
        "email1", "report1", "report2", "email2", "report3", "email3", "report4",
    ]  # fmt: skip


async def test_a_queued_task_runs_in_the_context_of_the_code_that_added_it() -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1) as scheduler:
        tenant.set("first")
        blocker = scheduler.add_task(wait_for(gate))
        tenant.set("second")
        queued = scheduler.add_task(wait_for, gate)
        tenant.set("third")  # the context at the time the queued task finally starts
        gate.set()
        assert (await blocker, await queued) == ("first", "second")


async def test_reject_raises_a_clear_error_and_closes_the_coroutine(logs: Logs) -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1) as scheduler:
        scheduler.add_task(wait_for(gate))
        scheduler.add_task(wait_for(gate))
        coro = wait_for(gate)
        with pytest.raises(BackgroundQueueFull, match=r"queue is full \(1 tasks waiting\)"):
            scheduler.add_task(coro, name="third")
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        [dropped] = events(logs, "background_task_dropped")
        assert dropped["task"] == "third"
        gate.set()


@pytest.mark.parametrize("thread", ["anyio worker", "thread of its own"])
async def test_a_thread_adding_to_a_full_queue_hears_so_as_a_caller_on_the_loop(
    thread: str, logs: Logs
) -> None:
    """Not handed to the loop to be dropped there later: the thread waits for the answer."""
    run_in_thread = anyio.to_thread.run_sync if thread == "anyio worker" else asyncio.to_thread
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1) as scheduler:
        scheduler.add_task(wait_for(gate))
        scheduler.add_task(wait_for(gate))

        def add() -> lightwork.TaskHandle[str]:
            return scheduler.add_task(wait_for(gate), name="from_a_thread")

        with pytest.raises(BackgroundQueueFull, match=r"queue is full \(1 tasks waiting\)"):
            await run_in_thread(add)
        [dropped] = events(logs, "background_task_dropped")
        assert dropped["task"] == "from_a_thread"
        gate.set()
        await wait_until(lambda: scheduler.counts()["completed"] == 2)
        accepted = await run_in_thread(add)  # room again
        assert await accepted == "-"


async def test_drop_returns_a_dropped_handle_without_raising() -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1, overflow="drop") as scheduler:
        scheduler.add_task(wait_for(gate))
        scheduler.add_task(wait_for(gate))
        handle = scheduler.add_task(wait_for(gate))
        assert handle.state is TaskState.DROPPED
        with pytest.raises(lightwork.TaskDroppedError, match="queue is full"):
            await handle
        gate.set()


async def test_add_task_wait_waits_for_room_in_the_queue() -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1, overflow="wait") as scheduler:
        scheduler.add_task(wait_for(gate))
        scheduler.add_task(wait_for(gate))
        with pytest.raises(BackgroundQueueFull, match="add_task_wait"):
            scheduler.add_task(wait_for(gate))
        waiting = asyncio.ensure_future(scheduler.add_task_wait(wait_for, gate))
        await asyncio.sleep(0)
        assert not waiting.done()
        gate.set()
        handle = await waiting
        assert await handle == "-"


async def test_cancelling_a_queued_task_frees_its_place(logs: Logs) -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1) as scheduler:
        scheduler.add_task(wait_for(gate))
        queued = scheduler.add_task(wait_for(gate))
        assert queued.cancel() is True
        assert queued.state is TaskState.CANCELLED
        replacement = scheduler.add_task(wait_for(gate))  # room again
        gate.set()
        await replacement


async def test_cancelled_queued_tasks_free_their_places_and_the_rest_keep_their_order() -> None:
    gate = asyncio.Event()
    started: list[int] = []

    async def job(n: int) -> None:
        started.append(n)
        await gate.wait()

    async with Scheduler(limits={"email": 1}, max_pending=6) as scheduler:
        scheduler.add_task(wait_for(gate), name="email")
        queued = [scheduler.add_task(job(n), name="email") for n in range(6)]
        for n in (1, 2, 4, 5):
            queued[n].cancel()
        queued += [scheduler.add_task(job(n), name="email") for n in range(6, 10)]
        queued[6].cancel()
        queued.append(scheduler.add_task(job(10), name="email"))
        with pytest.raises(BackgroundQueueFull):
            scheduler.add_task(job(11), name="email")
        gate.set()
        await asyncio.gather(*queued, return_exceptions=True)
    assert started == [0, 3, 7, 8, 9, 10]


async def test_add_task_wait_callers_get_in_in_the_order_they_came() -> None:
    gate = asyncio.Event()
    async with Scheduler(limits={"email": 1}, max_pending=1, overflow="wait") as scheduler:
        scheduler.add_task(wait_for(gate), name="email")
        queued = scheduler.add_task(wait_for(gate), name="email")
        first = asyncio.ensure_future(scheduler.add_task_wait(wait_for(gate), name="email"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(scheduler.add_task_wait(wait_for(gate), name="email"))
        await asyncio.sleep(0)
        queued.cancel()  # room for one: the first caller's
        assert (await first).state is TaskState.PENDING
        assert not second.done()
        gate.set()  # the first caller's task starts: room for the second
        assert await (await second) == "-"


async def fill_then_wait_twice(
    scheduler: Scheduler, gate: asyncio.Event
) -> tuple[lightwork.TaskHandle[str], asyncio.Future[Any], asyncio.Future[Any]]:
    """Fill a scheduler of one slot and one queue place; return the queued task and two
    add_task_wait callers, "first" and "second", waiting in that order."""
    scheduler.add_task(wait_for(gate))
    queued = scheduler.add_task(wait_for(gate))
    first = asyncio.ensure_future(scheduler.add_task_wait(wait_for(gate), name="first"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(scheduler.add_task_wait(wait_for(gate), name="second"))
    await asyncio.sleep(0)
    return queued, first, second


async def test_room_made_goes_to_the_first_add_task_wait_caller_not_to_a_later_add_task() -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1, overflow="wait") as scheduler:
        queued, first, second = await fill_then_wait_twice(scheduler, gate)
        queued.cancel()  # room for one: kept for the first caller at once...
        with pytest.raises(BackgroundQueueFull):  # ...so a caller that does not wait finds none
            scheduler.add_task(wait_for(gate), name="eager")
        assert (await first).name == "first"
        assert not second.done()
        gate.set()
        assert (await second).name == "second"
    assert scheduler.counts()["dropped"] == 1  # the eager one; no task accepted then dropped


async def test_add_task_wait_callers_get_rooms_made_at_once_in_the_order_they_came() -> None:
    gate, served = asyncio.Event(), list[str]()

    async def wait_then_add(caller: str) -> None:
        await scheduler.add_task_wait(wait_for(gate))
        served.append(caller)

    async with Scheduler(max_concurrency=1, max_pending=2, overflow="wait") as scheduler:
        scheduler.add_task(wait_for(gate))
        queued = [scheduler.add_task(wait_for(gate)) for _ in range(2)]
        callers = []
        for caller in "ABC":
            callers.append(asyncio.ensure_future(wait_then_add(caller)))
            await asyncio.sleep(0)
        for handle in queued:
            handle.cancel()  # two rooms: A's and B's
        with pytest.raises(BackgroundQueueFull):
            scheduler.add_task(wait_for(gate))
        await asyncio.sleep(0)
        assert served == ["A", "B"]
        gate.set()
        await asyncio.gather(*callers)
    assert served == ["A", "B", "C"]


async def test_an_add_task_wait_caller_cancelled_after_it_was_given_room_passes_it_on(
    logs: Logs,
) -> None:
    gate = asyncio.Event()
    async with Scheduler(max_concurrency=1, max_pending=1) as scheduler:
        queued, first, second = await fill_then_wait_twice(scheduler, gate)
        queued.cancel()  # the room goes to the first caller...
        first.cancel()  # ...which leaves before it could take it: the second gets it
        assert (await second).name == "second"
        with pytest.raises(asyncio.CancelledError):
            await first
        gate.set()
    [cancelled] = [e for e in events(logs, "background_task_cancelled") if e["task"] == "first"]
    assert cancelled["reason"] == "add_task_wait was cancelled while it waited"
    assert scheduler.counts()["added"] == 4  # each task ended in one state
    assert scheduler.counts()["completed"] == 2


def test_a_full_queue_answers_503_with_retry_after(lightwork_tasks: TaskRecorder) -> None:
    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)
        for _ in range(3):
            background.add_task(asyncio.sleep(0.01))
        return PlainTextResponse("accepted")

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[
            Middleware(
                BackgroundMiddleware,
                scheduler=Scheduler(max_concurrency=1, max_pending=1),
                start="immediately",
            )
        ],
        exception_handlers={BackgroundQueueFull: lightwork.queue_full_response},
    )
    with TestClient(app) as client:
        response = client.get("/")
        lightwork_tasks.wait()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_a_request_task_that_will_not_fit_is_refused_in_add_task_not_dropped_later(
    logs: Logs, lightwork_tasks: TaskRecorder
) -> None:
    refused: list[BackgroundQueueFull] = []

    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)
        for _ in range(3):
            try:
                background.add_task(asyncio.sleep(0.05))
            except BackgroundQueueFull as exc:
                refused.append(exc)
        return PlainTextResponse("accepted")  # the two accepted tasks start after this

    get_once(endpoint, Scheduler(max_concurrency=1, max_pending=1), lightwork_tasks)
    assert len(refused) == 1
    assert [h.state for h in lightwork_tasks.tasks] == [
        TaskState.COMPLETED, TaskState.COMPLETED, TaskState.DROPPED,
    ]  # fmt: skip
    [dropped] = events(logs, "background_task_dropped")
    assert dropped["reason"] == (
        "the queue is full (max_pending=1, with room kept for 2 tasks that start later)"
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("run", TaskState.COMPLETED), ("drop", TaskState.DROPPED)],
)
async def test_shutdown_runs_or_drops_queued_tasks_as_asked(
    policy: Any, expected: TaskState, logs: Logs
) -> None:
    scheduler = Scheduler(max_concurrency=1, pending_at_shutdown=policy, drain_timeout=5)
    await scheduler.start()
    running = scheduler.add_task(asyncio.sleep(0.02))
    queued = scheduler.add_task(asyncio.sleep(0.02))
    await scheduler.aclose()
    assert (running.state, queued.state) == (TaskState.COMPLETED, expected)
    [closed] = events(logs, "background_scheduler_closed")
    assert closed["completed"] + closed["dropped"] == closed["added"] == 2


async def test_queued_tasks_not_started_by_the_drain_deadline_are_dropped(logs: Logs) -> None:
    scheduler = Scheduler(max_concurrency=1, drain_timeout=0.05)
    await scheduler.start()
    stuck = scheduler.add_task(asyncio.sleep(10))
    queued = scheduler.add_task(asyncio.sleep(0))
    await scheduler.aclose()
    assert (stuck.state, queued.state) == (TaskState.CANCELLED, TaskState.DROPPED)
    assert "drain deadline" in events(logs, "background_task_dropped")[0]["reason"]


async def test_a_shielded_task_outlives_the_drain_deadline_until_its_own() -> None:
    scheduler = Scheduler(drain_timeout=0.02, shield_timeout=5)
    await scheduler.start()
    gate = asyncio.Event()
    plain = scheduler.add_task(wait_for(gate))
    shielded = scheduler.add_task(wait_for(gate), shield=True)
    closing = asyncio.ensure_future(scheduler.aclose())
    await wait_until(plain.done)
    assert plain.state is TaskState.CANCELLED
    assert not shielded.done()
    gate.set()
    await closing
    assert shielded.state is TaskState.COMPLETED


async def test_a_shielded_task_is_cancelled_at_the_shield_timeout() -> None:
    scheduler = Scheduler(drain_timeout=0.01, shield_timeout=0.05)
    await scheduler.start()
    shielded = scheduler.add_task(asyncio.sleep(10), shield=True)
    await scheduler.aclose()
    assert shielded.state is TaskState.CANCELLED


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be a positive integer or None"),
        ({"max_pending": -1}, "max_pending must be a positive integer or None"),
        ({"limits": {"email": 0}}, r"limits\['email'\] must be a positive integer"),
        ({"overflow": "explode"}, "overflow must be one of"),
        ({"pending_at_shutdown": "later"}, "pending_at_shutdown must be one of"),
        ({"shield_timeout": 0}, "shield_timeout must be a positive"),
    ],
)
def test_limit_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scheduler(**options)


async def test_shield_must_be_a_bool() -> None:
    async with Scheduler() as scheduler:
        with pytest.raises(TypeError, match="shield must be True or False"):
            scheduler.add_task(asyncio.sleep(0), shield="yes")  # type: ignore[call-overload]


async def test_overflow_offload_sends_an_offloadable_task_to_the_bridge(logs: Logs) -> None:
    gate = asyncio.Event()
    backend = MemoryBackend()
    scheduler = Scheduler(
        max_concurrency=1, max_pending=1, overflow="offload",
        offload=Offloader(backend, outbox=None),
    )  # fmt: skip
    async with scheduler:
        scheduler.add_task(wait_for(gate))
        scheduler.add_task(wait_for(gate))
        spilled = scheduler.add_task(offload_jobs.add, 2, b=3)
        assert spilled.state is TaskState.OFFLOADED
        with pytest.raises(lightwork.TaskOffloadedError) as raised:
            await spilled
        job = raised.value.job
        assert isinstance(job, lightwork.JobRef)
        with pytest.raises(BackgroundQueueFull):  # not offloadable: rejected
            scheduler.add_task(wait_for(gate))
        gate.set()
    assert [(s.name, s.job_id) for s in backend.submissions] == [("add", job.job_id)]
    [offloaded] = events(logs, "background_task_offloaded")
    assert offloaded["job_id"] == job.job_id
    assert "queue is full" in offloaded["reason"]


async def test_shutdown_spills_queued_offloadable_tasks_and_drops_the_rest(logs: Logs) -> None:
    backend = MemoryBackend()
    scheduler = Scheduler(
        max_concurrency=1, pending_at_shutdown="spill", offload=Offloader(backend, outbox=None)
    )
    await scheduler.start()
    running = scheduler.add_task(asyncio.sleep(0.02))
    spilled = scheduler.add_task(offload_jobs.add, 1)
    dropped = scheduler.add_task(asyncio.sleep(0))
    await scheduler.aclose()
    assert (running.state, spilled.state, dropped.state) == (
        TaskState.COMPLETED, TaskState.OFFLOADED, TaskState.DROPPED,
    )  # fmt: skip
    assert [s.name for s in backend.submissions] == ["add"]
    [closed] = events(logs, "background_scheduler_closed")
    assert (closed["completed"], closed["offloaded"], closed["dropped"]) == (2, 1, 1)


async def test_shutdown_drops_queued_tasks_of_every_name_in_the_order_added(logs: Logs) -> None:
    gate = asyncio.Event()
    scheduler = Scheduler(
        max_concurrency=2, limits={"email": 1}, pending_at_shutdown="drop", drain_timeout=5
    )
    await scheduler.start()
    running = [scheduler.add_task(wait_for(gate), name=name) for name in ("email", "report")]
    names = ("email", "report", "email", "audit")
    queued = [scheduler.add_task(wait_for(gate), name=name) for name in names]
    queued.pop(1).cancel()
    closing = asyncio.ensure_future(scheduler.aclose())
    await wait_until(lambda: all(handle.done() for handle in queued))
    gate.set()
    await closing
    assert [handle.state for handle in running] == [TaskState.COMPLETED] * 2
    dropped = events(logs, "background_task_dropped")
    assert [e["task_id"] for e in dropped] == [handle.id for handle in queued]


def test_the_middleware_takes_the_common_limits_itself(lightwork_tasks: TaskRecorder) -> None:
    async def endpoint(request: Request) -> Response:
        for _ in range(3):
            lightwork.get_background(request).add_task(asyncio.sleep(0.01))
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[
            Middleware(BackgroundMiddleware, max_concurrency=1, max_pending=1, overflow="drop")
        ],
    )
    with TestClient(app) as client:
        client.get("/")
        lightwork_tasks.wait()
    assert [h.state for h in lightwork_tasks.tasks].count(TaskState.DROPPED) == 1
    with pytest.raises(TypeError, match="pass max_concurrency, max_pending and overflow to your"):
        BackgroundMiddleware(app, scheduler=Scheduler(), max_concurrency=2)


def test_a_request_hears_of_a_full_queue_even_when_tasks_start_after_the_response(
    lightwork_tasks: TaskRecorder,
) -> None:
    release = threading.Event()

    async def hold() -> None:
        await asyncio.to_thread(release.wait, 5)

    async def endpoint(request: Request) -> Response:
        lightwork.get_background(request).add_task(hold)
        return PlainTextResponse("accepted")

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BackgroundMiddleware, max_concurrency=1, max_pending=1)],
        exception_handlers={BackgroundQueueFull: lightwork.queue_full_response},
    )
    with TestClient(app) as client:
        assert client.get("/").status_code == 200  # runs
        assert client.get("/").status_code == 200  # waits in the queue
        assert client.get("/").status_code == 503  # refused while the request can be told
        release.set()
        lightwork_tasks.wait()
    assert [h.state for h in lightwork_tasks.tasks] == [
        TaskState.COMPLETED, TaskState.COMPLETED, TaskState.DROPPED,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("overflow", "state"), [("drop", TaskState.DROPPED), ("offload", TaskState.OFFLOADED)]
)
def test_a_held_task_that_will_not_fit_overflows_in_the_handler(
    lightwork_tasks: TaskRecorder, overflow: lightwork.Overflow, state: TaskState
) -> None:
    seen: list[TaskState] = []
    backend = MemoryBackend()

    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)
        seen.extend(background.add_task(offload_jobs.add, 2, b=3).state for _ in range(3))
        return PlainTextResponse("accepted")

    scheduler = Scheduler(
        max_concurrency=1, max_pending=1, overflow=overflow,
        offload=Offloader(backend, outbox=None),
    )  # fmt: skip
    get_once(endpoint, scheduler, lightwork_tasks)
    # The third was dropped or offloaded while the handler ran, not after its response.
    assert seen == [TaskState.PENDING, TaskState.PENDING, state]
    assert [h.state for h in lightwork_tasks.tasks if h.name == "add"] == [
        TaskState.COMPLETED, TaskState.COMPLETED, state,
    ]  # fmt: skip
    assert len(backend.submissions) == (overflow == "offload")


def test_a_held_task_counts_against_its_names_limit_when_it_is_added(
    lightwork_tasks: TaskRecorder,
) -> None:
    refused: list[str] = []

    async def endpoint(request: Request) -> Response:
        background = lightwork.get_background(request)
        for name in ("report", "report", "report", "email"):
            try:
                background.add_task(asyncio.sleep(0.01), name=name)
            except BackgroundQueueFull:
                refused.append(name)
        return PlainTextResponse("accepted")

    # One report at a time and one place in the queue: the third report cannot fit, though
    # two slots are free; an email still runs beside the first report.
    scheduler = Scheduler(max_concurrency=3, max_pending=1, limits={"report": 1})
    get_once(endpoint, scheduler, lightwork_tasks)
    assert refused == ["report"]
    assert [(h.name, h.state) for h in lightwork_tasks.tasks] == [
        ("report", TaskState.COMPLETED), ("report", TaskState.COMPLETED),
        ("report", TaskState.DROPPED), ("email", TaskState.COMPLETED),
    ]  # fmt: skip
