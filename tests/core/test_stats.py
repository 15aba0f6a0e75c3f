"""TaskStats on its own: the counts, histograms and snapshot the scheduler's stats are made of."""

from __future__ import annotations

import contextvars
import json
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightwork import Scheduler, TaskState
from lightwork._core._handle import TERMINAL_STATES, TaskHandle
from lightwork._core._logging import TASK_BLOCKING, TASK_SLOW
from lightwork._core._stats import (
    BLOCKED_BUCKETS_S,
    DURATION_BUCKETS_S,
    MAX_NAMES,
    OTHER_NAME,
    TaskStats,
)

_SCHEDULER = Scheduler()  # never started: it only owns the handles below


def _task(name: str) -> TaskHandle[Any]:
    """A handle as ``add_task`` makes it, for a task named *name* (its coroutine closed)."""

    async def work() -> None: ...

    coro = work()
    coro.close()
    no_options = (None, None, None, None, None, None)
    return TaskHandle(_SCHEDULER, name, coro, contextvars.copy_context(), *no_options, shield=False)


def _started(stats: TaskStats, name: str) -> TaskHandle[Any]:
    task = _task(name)
    stats.added(task)
    stats.started(task)
    task._started_at = 1.0
    return task


def _end(
    stats: TaskStats,
    task: TaskHandle[Any],
    state: TaskState,
    duration: float | None = None,
    blocked: float = 0.0,
) -> None:
    """End *task* as the scheduler does: its times set, then counted."""
    task._ended_at = 0.0 if duration is None else task._started_at + duration
    task.blocked = blocked
    stats.ended(task, state)


def test_a_task_is_queued_then_in_flight_then_counted_by_its_end_state() -> None:
    stats = TaskStats()
    task = _task("send_email")
    stats.added(task)
    assert stats.snapshot()["tasks"]["send_email"]["queued"] == 1
    stats.started(task)
    task._started_at = 1.0
    running = stats.snapshot()["tasks"]["send_email"]
    assert (running["queued"], running["in_flight"]) == (0, 1)
    _end(stats, task, TaskState.FAILED, 0.2, 0.03)
    ended = stats.snapshot()["tasks"]["send_email"]
    assert ended["scheduled"] == 1
    assert (ended["queued"], ended["in_flight"]) == (0, 0)
    assert ended["failed"] == 1
    assert all(ended[s.value] == 0 for s in TERMINAL_STATES if s is not TaskState.FAILED)
    assert ended["duration_s"]["count"] == ended["blocked_s"]["count"] == 1
    assert ended["duration_s"]["sum"] == ended["duration_s"]["max"] == pytest.approx(0.2)
    assert ended["blocked_s"]["sum"] == 0.03


def test_a_task_that_never_started_leaves_the_queue_without_a_duration() -> None:
    stats = TaskStats()
    dropped, cancelled = _task("report"), _task("report")
    stats.added(dropped)
    stats.added(cancelled)
    _end(stats, dropped, TaskState.DROPPED)
    _end(stats, cancelled, TaskState.CANCELLED)
    report = stats.snapshot()["tasks"]["report"]
    assert (report["queued"], report["in_flight"]) == (0, 0)
    assert (report["dropped"], report["cancelled"]) == (1, 1)
    assert report["duration_s"]["count"] == report["blocked_s"]["count"] == 0


def test_histogram_buckets_are_cumulative_and_include_their_upper_bound() -> None:
    stats = TaskStats()
    # One on a bound (Prometheus's `le` includes it), one between bounds, one past the last.
    for duration in (DURATION_BUCKETS_S[2], 0.07, 3600.0):
        _end(stats, _started(stats, "t"), TaskState.COMPLETED, duration)
    snapshot = stats.snapshot()
    bounds = snapshot["buckets"]["duration_s"]
    assert bounds == list(DURATION_BUCKETS_S)
    histogram = snapshot["tasks"]["t"]["duration_s"]
    assert len(histogram["counts"]) == len(bounds) + 1
    expected = [(bound >= DURATION_BUCKETS_S[2]) + (bound >= 0.07) for bound in bounds] + [
        3
    ]  # the last entry is +Inf: every observation
    assert histogram["counts"] == expected
    assert histogram["count"] == 3
    assert histogram["max"] == 3600.0
    assert histogram["sum"] == pytest.approx(DURATION_BUCKETS_S[2] + 0.07 + 3600.0)
    assert snapshot["buckets"]["blocked_s"] == list(BLOCKED_BUCKETS_S)
    assert snapshot["tasks"]["t"]["blocked_s"]["counts"][0] == 3  # 0 s is in the first bucket


def test_slow_and_blocking_warnings_are_counted_and_other_events_refused() -> None:
    stats = TaskStats()
    task = _task("resize")
    stats.added(task)
    stats.warned(task, TASK_SLOW)
    stats.warned(task, TASK_BLOCKING)
    stats.warned(task, TASK_BLOCKING)
    resize = stats.snapshot()["tasks"]["resize"]
    assert (resize["slow"], resize["blocking"]) == (1, 2)
    with pytest.raises(ValueError, match="background_task_failed"):
        stats.warned(task, "background_task_failed")


def test_totals_add_up_every_name() -> None:
    stats = TaskStats()
    for name, state, duration in [("a", TaskState.COMPLETED, 0.01), ("b", TaskState.TIMED_OUT, 5)]:
        task = _started(stats, name)
        stats.warned(task, TASK_SLOW)
        _end(stats, task, state, duration, 0.001)
    stats.added(_task("c"))
    totals = stats.snapshot()["totals"]
    assert totals["scheduled"] == 3
    assert totals["queued"] == 1
    assert (totals["completed"], totals["timed_out"], totals["slow"]) == (1, 1, 2)
    assert totals["duration_s"]["count"] == 2
    assert totals["duration_s"]["max"] == 5
    assert totals["duration_s"]["sum"] == pytest.approx(5.01)
    assert totals["blocked_s"]["sum"] == pytest.approx(0.002)


def test_an_empty_snapshot_has_every_key_at_zero() -> None:
    snapshot = TaskStats().snapshot()
    assert snapshot["tasks"] == {}
    totals = snapshot["totals"]
    assert totals["scheduled"] == totals["duration_s"]["count"] == 0
    assert totals["duration_s"]["counts"] == [0] * (len(DURATION_BUCKETS_S) + 1)


def test_names_past_the_limit_share_one_entry() -> None:
    stats = TaskStats()
    tasks = [_started(stats, f"email-{i}") for i in range(MAX_NAMES + 3)]
    _end(stats, tasks[MAX_NAMES + 1], TaskState.COMPLETED, 0.1)
    named = stats.snapshot()["tasks"]
    assert len(named) == MAX_NAMES + 1
    other = named[OTHER_NAME]
    assert (other["scheduled"], other["in_flight"], other["completed"]) == (3, 2, 1)
    assert f"email-{MAX_NAMES}" not in named


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(TERMINAL_STATES),
            st.booleans(),
            st.floats(min_value=0, max_value=1e4),
            st.floats(min_value=0, max_value=1e4),
        ),
        max_size=40,
    )
)
def test_every_task_is_counted_once_and_the_snapshot_is_json(
    lives: list[tuple[str, TaskState, bool, float, float]],
) -> None:
    stats = TaskStats()
    for name, state, started, duration, blocked in lives:
        task = _started(stats, name) if started else _task(name)
        if not started:
            stats.added(task)
        _end(stats, task, state, duration if started else None, blocked)
    snapshot = json.loads(json.dumps(snapshot_ := stats.snapshot()))
    assert snapshot == snapshot_
    totals = snapshot["totals"]
    assert totals["scheduled"] == len(lives)
    assert sum(totals[s.value] for s in TERMINAL_STATES) == len(lives)
    assert totals["queued"] == totals["in_flight"] == 0
    assert totals["duration_s"]["count"] == sum(started for _, _, started, _, _ in lives)
    for task in snapshot["tasks"].values():
        assert task["duration_s"]["counts"] == sorted(task["duration_s"]["counts"])


def test_a_snapshot_can_be_taken_from_another_thread_while_tasks_come_and_go() -> None:
    stats = TaskStats()
    stop = threading.Event()
    scrapes: list[dict[str, object]] = []
    errors: list[BaseException] = []

    def scrape() -> None:
        try:
            while not stop.is_set():
                scrapes.append(stats.snapshot())
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    ended = 0
    try:
        # Until the scraper has read many times mid-update (bounded, in case it cannot).
        while len(scrapes) < 50 and ended < 2_000_000 and not errors:
            name = f"n{ended % 700}"  # new names keep appearing, past MAX_NAMES too
            _end(stats, _started(stats, name), TaskState.COMPLETED, 0.001)
            ended += 1
    finally:
        stop.set()
        scraper.join()
    assert errors == []
    assert len(scrapes) >= 50
    assert stats.snapshot()["totals"]["completed"] == ended
