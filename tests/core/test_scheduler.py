"""The scheduler on its own: outcomes, timers, callbacks, context, threads and shutdown."""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio.to_thread
import pytest

import lightwork
from lightwork import Scheduler, TaskHandle, TaskState
from lightwork._core import _lifecycle as lifecycle_module
from lightwork._core import _shutdown as shutdown_module
from lightwork._core._deadlines import Bucket, Deadlines
from tests.support import events, spin, wait_until

Logs = list[MutableMapping[str, Any]]
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    async with Scheduler() as running:
        yield running


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def ping(answer: str) -> str:
    return answer


async def fail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


async def test_a_task_runs_detached_and_its_handle_gives_the_result(
    scheduler: Scheduler, logs: Logs
) -> None:
    handle = scheduler.add_task(double, 21)
    assert not handle.done()
    assert await handle == 42
    assert handle.state is TaskState.COMPLETED
    assert handle.result() == 42
    assert handle.exception() is None
    [completed] = events(logs, "background_task_completed")
    assert completed["task"] == "double"
    assert completed["task_id"] == handle.id
    assert completed["log_level"] == "debug"
    assert completed["duration_ms"] >= 0


@pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager tasks came with Python 3.12"
)
async def test_tasks_end_once_under_an_eager_task_factory() -> None:
    def eager(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        # asyncio.eager_task_factory, in a form that uvloop 0.23 can call on Python 3.13.0
        # too (it passes eager_start, which that factory does not take).
        options["eager_start"] = True
        return asyncio.Task(coro, loop=loop, **options)

    loop = asyncio.get_running_loop()
    loop.set_task_factory(eager)
    try:
        async with Scheduler(drain_timeout=1) as scheduler:
            at_once = scheduler.add_task(ping, "at once")  # ends inside create_task
            later = scheduler.add_task(double, 4)  # waits once, then ends on the loop
            assert at_once.state is TaskState.COMPLETED
            assert await asyncio.wait_for(at_once, 1) == "at once"
            assert await asyncio.wait_for(later, 1) == 8
            assert scheduler.running == 0
            assert scheduler.counts()["completed"] == 2
    finally:
        loop.set_task_factory(None)


async def test_a_handle_awaited_by_many_wakes_them_all_and_a_cancelled_awaiter_harms_none(
    scheduler: Scheduler,
) -> None:
    release = asyncio.Event()

    async def answer() -> int:
        await release.wait()
        return 7

    handle = scheduler.add_task(answer)
    awaiters = [asyncio.ensure_future(asyncio.wait_for(handle, 5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    awaiters[0].cancel()
    release.set()
    assert await asyncio.gather(*awaiters[1:]) == [7, 7]
    assert awaiters[0].cancelled()
    assert handle.state is TaskState.COMPLETED
    assert scheduler._waiters == {}  # an ended task's waiter is not kept


async def test_a_failing_task_is_logged_with_its_traceback_and_reaches_on_error(
    scheduler: Scheduler, logs: Logs
) -> None:
    seen: list[BaseException] = []
    handle = scheduler.add_task(fail("boom"), on_error=seen.append)
    with pytest.raises(ValueError, match="boom"):
        await handle
    assert handle.state is TaskState.FAILED
    assert isinstance(seen[0], ValueError)
    [failed] = events(logs, "background_task_failed")
    assert failed["log_level"] == "error"
    assert failed["exc_info"] is seen[0]


async def test_a_failing_task_without_on_error_is_still_logged(
    scheduler: Scheduler, logs: Logs
) -> None:
    handle = scheduler.add_task(fail, "silent no more")
    with pytest.raises(ValueError, match="silent no more"):
        await handle
    assert len(events(logs, "background_task_failed")) == 1


async def test_a_task_past_its_timeout_is_cancelled_and_on_error_gets_a_timeout_error(
    scheduler: Scheduler, logs: Logs
) -> None:
    seen: list[BaseException] = []
    handle = scheduler.add_task(asyncio.sleep(10), timeout=0.05, on_error=seen.append)
    with pytest.raises(lightwork.TaskTimeoutError) as raised:
        await handle
    assert isinstance(raised.value, TimeoutError)
    assert handle.state is TaskState.TIMED_OUT
    assert seen == [raised.value]
    [timed_out] = events(logs, "background_task_timed_out")
    assert timed_out["timeout_s"] == 0.05
    assert timed_out["log_level"] == "warning"


async def test_timeout_none_means_no_limit(logs: Logs) -> None:
    async with Scheduler(timeout=0.01, slow_threshold=None) as scheduler:
        handle = scheduler.add_task(asyncio.sleep(0.05, "done"), timeout=None)
        assert await handle == "done"


async def test_a_slow_task_is_reported_while_it_still_runs(
    scheduler: Scheduler, logs: Logs
) -> None:
    release = asyncio.Event()
    handle = scheduler.add_task(release.wait(), name="waiting", slow_threshold=0.02)
    await wait_until(lambda: bool(events(logs, "background_task_slow")))
    assert handle.state is TaskState.RUNNING
    release.set()
    await handle
    [slow] = events(logs, "background_task_slow")
    assert slow["task"] == "waiting"
    assert slow["task_id"] == handle.id
    assert slow["threshold_ms"] == 20.0
    assert slow["duration_ms"] >= 20.0
    assert slow["log_level"] == "warning"
    # It only waited: the hint speaks of waits, not of moving CPU work away.
    assert slow["blocked_ms"] < 20.0
    assert "waiting, not computing" in slow["hint"]
    assert "offload" not in slow["hint"]


async def test_a_slow_task_that_held_the_loop_is_told_to_offload(logs: Logs) -> None:
    async def compute_then_wait() -> None:
        spin(0.03)  # CPU work in one step, no await
        await asyncio.sleep(0.05)

    # Steps timed, so that the hold is measured whatever the machine is doing.
    async with Scheduler(slow_threshold=0.02, block_threshold=0.01, time_steps=True) as scheduler:
        await scheduler.add_task(compute_then_wait(), name="computing")
    [slow] = events(logs, "background_task_slow")
    assert slow["blocked_ms"] >= 30.0
    assert "offload" in slow["hint"]
    assert "CPU-bound" in slow["hint"]


async def test_a_task_that_blocks_past_the_threshold_in_one_step_is_reported_once(
    scheduler: Scheduler, logs: Logs
) -> None:
    async def compute() -> None:
        spin(0.03)

    await scheduler.add_task(compute(), slow_threshold=0.01)
    assert len(events(logs, "background_task_slow")) == 1


async def test_timed_steps_report_a_blocking_step_and_again_each_longer_one(logs: Logs) -> None:
    async def compute() -> None:
        for seconds in (0.025, 0.15, 0.03):  # the last is past the threshold, not the longest
            spin(seconds)
            await asyncio.sleep(0)

    async with Scheduler(time_steps=True) as scheduler:
        handle = scheduler.add_task(compute(), block_threshold=0.02, slow_threshold=None)
        await handle
    reported = [e["blocked_ms"] for e in events(logs, "background_task_blocking")]
    assert len(reported) == 2
    assert 25 <= reported[0] < reported[1] == round(handle.longest_step * 1000, 1)
    assert scheduler.stats()["totals"]["blocking"] == 1  # tasks, not warnings


async def test_a_fast_task_is_not_reported_slow(scheduler: Scheduler, logs: Logs) -> None:
    await scheduler.add_task(double, 1)
    assert events(logs, "background_task_slow") == []


async def test_callbacks_get_the_result_and_may_be_async(scheduler: Scheduler) -> None:
    results: list[int] = []
    async_done = asyncio.Event()

    async def record(value: int) -> None:
        results.append(value)
        async_done.set()

    await scheduler.add_task(double(2), on_complete=results.append)
    await scheduler.add_task(double(3), on_complete=record)
    await async_done.wait()
    assert results == [4, 6]


async def test_a_broken_callback_is_logged_and_contained(scheduler: Scheduler, logs: Logs) -> None:
    def broken(value: object) -> None:
        raise RuntimeError("callback bug")

    async def broken_async(value: object) -> None:
        raise RuntimeError("async callback bug")

    first = scheduler.add_task(double(1), on_complete=broken)
    second = scheduler.add_task(fail("x"), on_error=broken_async)
    assert await first == 2
    with pytest.raises(ValueError, match="x"):
        await second
    await wait_until(lambda: len(events(logs, "background_callback_failed")) == 2)
    sync_report, async_report = events(logs, "background_callback_failed")
    assert sync_report["callback"].endswith("broken")
    assert str(sync_report["exc_info"]) == "callback bug"
    assert str(async_report["exc_info"]) == "async callback bug"
    assert first.state is TaskState.COMPLETED


async def test_cancel_ends_a_running_task_as_cancelled(scheduler: Scheduler, logs: Logs) -> None:
    seen: list[BaseException] = []
    handle = scheduler.add_task(asyncio.sleep(10), on_error=seen.append)
    await asyncio.sleep(0)
    assert handle.cancel() is True
    with pytest.raises(lightwork.TaskCancelledError):
        await handle
    assert handle.state is TaskState.CANCELLED
    assert handle.cancel() is False
    assert isinstance(seen[0], lightwork.TaskCancelledError)
    [cancelled] = events(logs, "background_task_cancelled")
    assert cancelled["reason"] == "cancelled"


async def test_a_task_cancelled_before_its_first_step_ends_cancelled_once_and_never_runs(
    scheduler: Scheduler, logs: Logs
) -> None:
    """Cancelled as soon as added, the asyncio task's first step is the cancellation itself."""
    ran: list[str] = []

    async def record() -> None:
        ran.append("ran")

    handle = scheduler.add_task(record())
    assert handle._task is not None  # launched,
    assert handle._started_at == 0.0  # not yet stepped
    assert isinstance(handle._task.get_coro(), collections.abc.Coroutine)
    assert handle.cancel() is True
    with pytest.raises(lightwork.TaskCancelledError):
        await handle
    assert handle.state is TaskState.CANCELLED
    assert ran == []  # and its coroutine was closed: no "never awaited" warning
    assert len(events(logs, "background_task_cancelled")) == 1


async def test_each_task_runs_in_a_copy_of_the_context_that_added_it(
    scheduler: Scheduler,
) -> None:
    async def read_and_change() -> str:
        seen = request_id.get()
        request_id.set("changed by the task")
        return seen

    request_id.set("req-1")
    first = scheduler.add_task(read_and_change)
    request_id.set("req-2")
    second = scheduler.add_task(read_and_change())
    assert await first == "req-1"
    assert await second == "req-2"
    assert request_id.get() == "req-2"


async def test_log_events_carry_the_context_of_the_code_that_added_the_task(
    scheduler: Scheduler, logs: Logs
) -> None:
    import structlog  # noqa: PLC0415

    structlog.contextvars.bind_contextvars(request_id="abc")
    try:
        handle = scheduler.add_task(fail("x"))
    finally:
        structlog.contextvars.clear_contextvars()
    with pytest.raises(ValueError, match="x"):
        await handle
    [failed] = events(logs, "background_task_failed")
    assert failed["request_id"] == "abc"


async def test_add_log_fields_names_the_task_that_logs_and_no_other(
    scheduler: Scheduler, logs: Logs
) -> None:
    import structlog  # noqa: PLC0415

    log = structlog.get_logger("app")

    async def on_the_loop() -> None:
        log.info("from_the_loop")
        await asyncio.sleep(0)
        log.info("after_a_wait", task="mine")  # the event's own field wins
        await asyncio.create_task(child())

    async def child() -> None:  # a plain asyncio task of its own, not lightwork's
        log.info("from_a_child")

    def in_a_thread() -> None:
        log.info("from_a_thread")

    log.info("outside")
    first = scheduler.add_task(on_the_loop(), name="loop-task")
    second = scheduler.add_task(in_a_thread)
    await first
    await second
    logged = {e["event"]: (e.get("task"), e.get("task_id")) for e in logs}
    assert logged["outside"] == (None, None)
    assert logged["from_the_loop"] == ("loop-task", first.id)
    assert logged["after_a_wait"] == ("mine", first.id)
    assert logged["from_a_child"] == (None, None)
    assert logged["from_a_thread"] == ("in_a_thread", second.id)


async def test_a_task_binds_nothing_in_its_context(scheduler: Scheduler) -> None:
    """Nothing per task for the collector: the task's context is the caller's, unchanged."""

    async def bound() -> list[str]:
        return [var.name for var in contextvars.copy_context()]

    assert await scheduler.add_task(bound) == [var.name for var in contextvars.copy_context()]


async def test_sync_callables_run_in_lightworks_own_bounded_threads(logs: Logs) -> None:
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def work() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return threading.get_ident()

    async with Scheduler(max_threads=2) as scheduler:
        handles = [scheduler.add_task(work) for _ in range(4)]
        await wait_until(lambda: running == 2)
        # Starlette's own pool (anyio's default limiter) is untouched by background work.
        assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
        release.set()
        idents = [await h for h in handles]
    assert peak == 2
    assert threading.get_ident() not in idents


async def test_a_sync_function_that_returns_a_coroutine_fails_with_a_clear_error(
    scheduler: Scheduler,
) -> None:
    handle = scheduler.add_task(lambda: double(1))
    with pytest.raises(TypeError, match="sync function that returned a coroutine"):
        await handle


async def test_tasks_can_be_added_from_another_thread(scheduler: Scheduler) -> None:
    handle = await asyncio.to_thread(scheduler.add_task, double, 5)
    assert await handle == 10


def test_a_thread_adding_to_a_scheduler_that_is_not_running_hears_so(logs: Logs) -> None:
    errors: list[BaseException] = []

    async def note(error: BaseException) -> None:
        errors.append(error)  # never: no event loop in this thread to await it on

    scheduler = Scheduler()
    with pytest.raises(lightwork.SchedulerClosedError, match="start it first"):
        scheduler.add_task(asyncio.sleep(0), on_error=note)
    assert scheduler.counts()["dropped"] == 1
    [failed] = events(logs, "background_callback_failed")
    assert "needs the event loop's thread" in str(failed["exc_info"])
    assert errors == []


async def test_shutdown_drains_then_cancels_what_is_still_running(logs: Logs) -> None:
    scheduler = Scheduler(drain_timeout=0.1)
    await scheduler.start()
    quick = scheduler.add_task(asyncio.sleep(0.01, "quick"))
    stuck = scheduler.add_task(asyncio.sleep(10), name="stuck")
    await scheduler.aclose()
    assert quick.state is TaskState.COMPLETED
    assert stuck.state is TaskState.CANCELLED
    [cancelled] = events(logs, "background_task_cancelled")
    assert cancelled["task"] == "stuck"
    assert cancelled["reason"] == "shutdown"
    [closed] = events(logs, "background_scheduler_closed")
    assert closed["completed"] == 1
    assert closed["cancelled"] == 1
    assert closed["running"] == 0


async def ignore_cancellation_until(stop: asyncio.Event, *_: object) -> None:
    """Swallow every cancellation until *stop* is set: what a badly written task does."""
    while not stop.is_set():
        try:
            await stop.wait()
        except asyncio.CancelledError:
            continue


async def test_a_task_that_refuses_to_stop_is_reported_abandoned(
    logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutdown_module, "CANCEL_GRACE_S", 0.05)
    stop = asyncio.Event()
    scheduler = Scheduler(drain_timeout=0.01)
    await scheduler.start()
    handle = scheduler.add_task(ignore_cancellation_until(stop), name="stubborn")
    try:
        await scheduler.aclose()
    finally:
        stop.set()
    await handle
    assert [e["task"] for e in events(logs, "background_task_abandoned")] == ["stubborn"]


async def test_adding_after_shutdown_raises_and_closes_the_coroutine() -> None:
    scheduler = Scheduler()
    await scheduler.start()
    await scheduler.aclose()
    coro = double(1)
    with pytest.raises(lightwork.SchedulerClosedError, match="closed"):
        scheduler.add_task(coro)
    # Closed, so no "never awaited" warning comes later.
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(lightwork.SchedulerClosedError):
        scheduler.add_task(double, 1)


async def test_a_scheduler_used_without_start_starts_on_first_use_and_says_so(
    logs: Logs,
) -> None:
    scheduler = Scheduler()
    assert await scheduler.add_task(double, 4) == 8
    [started] = events(logs, "background_scheduler_started")
    assert started["lifespan"] is False
    assert "lifespan" in started["hint"]
    await scheduler.aclose()


async def test_arguments_are_logged_only_when_asked(logs: Logs) -> None:
    async with Scheduler() as quiet:
        with pytest.raises(ValueError, match="x"):
            await quiet.add_task(fail, "x")
    async with Scheduler(log_args=True) as verbose:
        with pytest.raises(ValueError, match="secret-ish"):
            await verbose.add_task(fail("secret-ish"))
    quiet_event, verbose_event = events(logs, "background_task_failed")
    assert "args" not in quiet_event
    assert "secret-ish" in verbose_event["args"]


async def test_counts_and_reprs_show_what_happened(scheduler: Scheduler) -> None:
    handle = scheduler.add_task(
        double,
        1,
    )
    assert "state=running" in repr(handle)
    await handle
    with pytest.raises(ValueError, match="x"):
        await scheduler.add_task(fail("x"))
    assert scheduler.counts() == {
        "added": 2, "running": 0, "completed": 1, "failed": 1,
        "timed_out": 0, "cancelled": 0, "dropped": 0, "offloaded": 0,
    }  # fmt: skip
    assert "completed=1 failed=1" in repr(scheduler)
    assert f"id={handle.id} name='double' state=completed duration=" in repr(handle)


async def test_result_before_the_end_raises_invalid_state(scheduler: Scheduler) -> None:
    handle = scheduler.add_task(asyncio.sleep(0))
    with pytest.raises(asyncio.InvalidStateError):
        handle.result()
    with pytest.raises(asyncio.InvalidStateError):
        handle.exception()
    await handle


async def test_an_awaiter_that_is_cancelled_does_not_cancel_the_task(
    scheduler: Scheduler,
) -> None:
    async def wait_for(handle: TaskHandle[Any]) -> object:
        return await handle

    release = asyncio.Event()
    handle = scheduler.add_task(release.wait())
    waiter = asyncio.ensure_future(wait_for(handle))
    other = asyncio.ensure_future(wait_for(handle))
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    assert await other is True
    assert waiter.cancelled()
    assert handle.state is TaskState.COMPLETED


def test_lightworks_task_errors_survive_pickling() -> None:
    import pickle  # noqa: PLC0415

    error = lightwork.TaskTimeoutError("too slow", task="t", task_id=7)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.task, copy.task_id) == (
        lightwork.TaskTimeoutError, "too slow", "t", 7,
    )  # fmt: skip


def crunch(seconds: float) -> str:
    """CPU-bound work: no await, no I/O."""
    spin(seconds)
    return "done"


async def test_a_sync_callable_in_a_thread_does_not_block_but_one_run_inline_does(
    scheduler: Scheduler, logs: Logs
) -> None:
    assert await scheduler.add_task(crunch, 0.05) == "done"
    assert events(logs, "background_task_blocking") == []

    @lightwork.task(inline=True)
    def spin_on_the_loop(seconds: float) -> str:
        return crunch(seconds)

    assert await scheduler.add_task(spin_on_the_loop, 0.05) == "done"
    [blocking] = events(logs, "background_task_blocking")
    assert blocking["task"] == "spin_on_the_loop"
    assert blocking["blocked_ms"] >= 45  # sampled: right to half a beat interval (2.5 ms)


def test_inline_is_for_sync_functions() -> None:
    with pytest.raises(TypeError, match="inline=True is for sync functions"):
        lightwork.task(inline=True)(double)


async def test_a_hung_async_callback_is_cancelled_at_shutdown(logs: Logs) -> None:
    async def hang(result: object) -> None:
        await asyncio.Event().wait()

    scheduler = Scheduler(drain_timeout=0.02)
    await scheduler.start()
    await scheduler.add_task(double(1), on_complete=hang)
    await scheduler.aclose()
    assert scheduler._callbacks == set()
    [cancelled] = events(logs, "background_callback_cancelled")
    assert (cancelled["task"], cancelled["reason"]) == ("double", "shutdown")
    assert cancelled["callback"].endswith("hang")


async def test_a_callback_that_will_not_stop_is_reported_abandoned(
    logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutdown_module, "CANCEL_GRACE_S", 0.05)
    stop = asyncio.Event()
    scheduler = Scheduler(drain_timeout=0.01)
    await scheduler.start()
    await scheduler.add_task(
        double(1), on_complete=functools.partial(ignore_cancellation_until, stop)
    )
    try:
        await scheduler.aclose()
    finally:
        stop.set()
    [abandoned] = events(logs, "background_callback_abandoned")
    assert abandoned["callback"] == "double callback"


async def test_a_task_that_ignores_its_timeout_is_reported_when_it_ends(
    scheduler: Scheduler, logs: Logs
) -> None:
    async def ignore_cancellation() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "finished anyway"
        return "unreachable"

    handle = scheduler.add_task(ignore_cancellation(), timeout=0.02)
    assert await handle == "finished anyway"
    [completed] = events(logs, "background_task_completed")
    assert completed["log_level"] == "warning"
    assert "CancelledError" in completed["hint"]


async def test_a_task_that_runs_on_past_its_timeout_is_reported_while_it_runs(
    scheduler: Scheduler, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle_module, "TIMEOUT_GRACE_S", 0.05)
    stop = asyncio.Event()
    handle = scheduler.add_task(ignore_cancellation_until(stop), name="stubborn", timeout=0.05)
    await wait_until(lambda: bool(events(logs, "background_task_timeout_ignored")))
    assert handle.state is TaskState.RUNNING
    await asyncio.sleep(0.2)  # reported once, not again at each grace period
    [ignored] = events(logs, "background_task_timeout_ignored")
    assert (ignored["task"], ignored["timeout_s"]) == ("stubborn", 0.05)
    assert ignored["duration_ms"] >= 100
    assert "CancelledError" in ignored["hint"]
    stop.set()
    await handle
    [completed] = events(logs, "background_task_completed")
    assert completed["log_level"] == "warning"


async def test_a_later_deadline_armed_by_a_timer_does_not_delay_an_earlier_one(
    logs: Logs,
) -> None:
    async with Scheduler(slow_threshold=0.05, timeout=30) as scheduler:
        # Its slow warning fires first, and arms its 30 s timeout from the loop timer.
        first = scheduler.add_task(asyncio.sleep(60), name="first")
        await asyncio.sleep(0.02)
        second = scheduler.add_task(asyncio.sleep(60), name="second", timeout=0.2)
        with pytest.raises(lightwork.TaskTimeoutError):
            await asyncio.wait_for(asyncio.shield(second), 5)  # not 30 s later
        [slow_second] = [e for e in events(logs, "background_task_slow") if e["task"] == "second"]
        assert slow_second["duration_ms"] < 1000  # at 50 ms, not with the 30 s timeout
        first.cancel()


async def test_finished_tasks_leave_no_deadline_behind(scheduler: Scheduler) -> None:
    handles = [scheduler.add_task(double, n) for n in range(200)]
    for handle in handles:
        await handle
    assert len(scheduler._deadlines) == 0
    assert scheduler._deadlines._buckets == {}


async def test_a_bucket_dropped_by_close_never_frees_a_new_one_of_the_same_time(
    scheduler: Scheduler,
) -> None:
    deadlines = Deadlines(asyncio.get_running_loop(), scheduler._on_timer)
    stale, fresh = (scheduler.add_task(asyncio.sleep(0)) for _ in range(2))
    at = time.perf_counter() + 10
    deadlines.arm(stale, at)
    deadlines.close()  # as when a scheduler moves to a new loop
    deadlines.arm(fresh, at)
    deadlines.disarm(stale)
    assert len(deadlines) == 1
    assert isinstance(fresh._deadline, Bucket)
    assert fresh._deadline is deadlines._buckets[fresh._deadline.key]
    deadlines.close()
