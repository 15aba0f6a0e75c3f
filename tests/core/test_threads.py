"""Sync tasks in lightwork's worker threads: ``max_threads`` counts every function still running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from lightwork import Scheduler, TaskCancelledError, TaskState, TaskTimeoutError
from tests.support import wait_until

BOUND_S = 5.0
"""Longest any blocked function or test step may wait, so that a failure cannot hang the run."""

TIMEOUT_S = 0.3
"""The tasks' timeout: ample for a thread to start its function, far short of ``BOUND_S``."""


class Blocker:
    """Sync functions that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.started = self.running = self.peak = self.returned = 0

    def __call__(self) -> str:
        with self.lock:
            self.started += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.release.wait(BOUND_S)
        with self.lock:
            self.running -= 1
            self.returned += 1
        return "done"


@pytest.fixture
def blocker() -> Iterator[Blocker]:
    """A ``Blocker`` whose threads are all released at the end of the test."""
    blocker = Blocker()
    try:
        yield blocker
    finally:
        blocker.release.set()


async def test_timed_out_functions_keep_their_thread_until_they_return(blocker: Blocker) -> None:
    async with Scheduler(max_threads=2, timeout=TIMEOUT_S) as scheduler:
        stuck = [scheduler.add_task(blocker) for _ in range(2)]
        await wait_until(lambda: blocker.running == 2, BOUND_S)
        for handle in stuck:
            with pytest.raises(TaskTimeoutError):
                await handle
        assert blocker.running == 2  # abandoned: still running in their threads

        # Added after the first two timed out: no thread is free, so they wait, then time out.
        queued = [scheduler.add_task(blocker) for _ in range(2)]
        for handle in queued:
            with pytest.raises(TaskTimeoutError):
                await handle
        assert (blocker.started, blocker.peak) == (2, 2)

        blocker.release.set()
        await wait_until(lambda: blocker.returned == 2, BOUND_S)
        # Their threads are free again once their functions returned.
        assert await scheduler.add_task(blocker) == "done"
        assert blocker.peak == 2


async def test_a_sync_task_cancelled_before_its_turn_never_runs(blocker: Blocker) -> None:
    ran = threading.Event()
    async with Scheduler(max_threads=1, timeout=None) as scheduler:
        first = scheduler.add_task(blocker)
        await wait_until(lambda: blocker.running == 1, BOUND_S)
        queued = scheduler.add_task(ran.set)
        limiter = scheduler._thread_limiter()
        await wait_until(lambda: limiter.statistics().tasks_waiting == 1, BOUND_S)

        queued.cancel()
        with pytest.raises(TaskCancelledError):
            await queued
        assert queued.state is TaskState.CANCELLED

        blocker.release.set()
        assert await first == "done"
        assert await scheduler.add_task(blocker) == "done"  # the one thread is free again
    assert not ran.is_set()


async def test_a_sync_task_ends_at_its_timeout_while_its_thread_is_stuck(
    blocker: Blocker,
) -> None:
    async with Scheduler(max_threads=1, timeout=TIMEOUT_S) as scheduler:
        handle = scheduler.add_task(blocker)
        await wait_until(lambda: blocker.running == 1, BOUND_S)
        with pytest.raises(TaskTimeoutError):
            await handle
        assert handle.state is TaskState.TIMED_OUT
        assert (blocker.running, blocker.returned) == (1, 0)
        blocker.release.set()
        await wait_until(lambda: blocker.returned == 1, BOUND_S)


async def test_shutdown_does_not_wait_for_stuck_threads_or_their_queue(blocker: Blocker) -> None:
    ran = threading.Event()
    scheduler = Scheduler(max_threads=1, timeout=None, drain_timeout=0.05)
    await scheduler.start()
    stuck = scheduler.add_task(blocker)
    await wait_until(lambda: blocker.running == 1, BOUND_S)
    queued = scheduler.add_task(ran.set)
    async with asyncio.timeout(BOUND_S):
        await scheduler.aclose()
    assert (stuck.state, queued.state) == (TaskState.CANCELLED, TaskState.CANCELLED)
    assert blocker.running == 1
    assert not ran.is_set()
