"""The outbox: jobs the engine cannot take wait in SQLite, are retried, replayed, or given up.

The engine is the in-memory backend, told to play unreachable, slow or refusing; the
outbox is a real SQLite file in the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import pytest

import lightwork
from lightwork import Job, JobStatus, Offloader, Outbox, Scheduler
from lightwork.backends import MemoryBackend, Submission
from tests import offload_jobs as jobs
from tests.support import events, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from lightwork.testing import TaskRecorder

Logs = list[MutableMapping[str, Any]]


class Engine(MemoryBackend):
    """A pretend engine that counts hand-off attempts and can be slow or refuse."""

    def __init__(self, destination: str = "memory") -> None:
        super().__init__(run=True)
        self.attempts = 0
        self.hang = False
        self.latency = 0.0
        self.refuse = False
        self._destination = destination

    @property
    def destination(self) -> str:
        return self._destination

    async def submit(self, submission: Submission) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.latency:  # only when asked: the other tests' engine takes a job without a pause
            await asyncio.sleep(self.latency)
        if self.refuse:
            raise lightwork.BackendError("the engine refuses this job for good")
        await super().submit(submission)


def fast_outbox(path: Path, max_attempts: int | None = 20) -> Outbox:
    return Outbox(path, max_attempts=max_attempts, backoff=0.01, max_backoff=0.05)


async def test_a_job_waits_in_the_outbox_while_the_engine_is_down_then_goes_through(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.available = False
    offloader = Offloader(engine, outbox=fast_outbox(tmp_path / "outbox.db"))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(Job(jobs.add, 2, b=2), job_id="kept")
        await lightwork_tasks.join()
        assert await ref.status() is JobStatus.DEFERRED
        [deferred] = events(logs, "offload_deferred")
        assert deferred["job_id"] == "kept"
        assert "unreachable" in deferred["reason"]
        assert deferred["retry_in_s"] >= 0
        await wait_until(lambda: bool(events(logs, "offload_outbox_retry_failed")))

        engine.available = True
        assert await ref.result(timeout=5) == 4
    [submission] = engine.submissions
    assert submission.job_id == "kept"  # the same id as at offload() time
    [enqueued] = events(logs, "offload_enqueued")
    assert enqueued["job_id"] == "kept"
    assert enqueued["attempts"] >= 2
    assert offloader.counts() == {"enqueued": 1, "deferred": 1, "failed": 0}


async def test_jobs_left_in_the_outbox_are_delivered_when_the_app_starts_again(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    path = tmp_path / "outbox.db"
    down = Engine()
    down.available = False
    first_run = Offloader(down, outbox=Outbox(path, backoff=60))  # no retry before the "restart"
    async with Scheduler(offload=first_run) as scheduler, first_run:
        refs = [scheduler.offload(Job(jobs.add, n), job_id=f"job-{n}") for n in range(3)]
        await lightwork_tasks.join()
    assert down.submissions == []

    engine = Engine()
    second_run = Offloader(engine, outbox=fast_outbox(path))
    async with second_run:
        for ref in refs:
            assert await second_run.job(ref.job_id).result(timeout=5) == int(ref.job_id[-1])
    [replayed] = events(logs, "offload_outbox_replayed")
    assert replayed["jobs"] == 3
    assert sorted(s.job_id for s in engine.submissions) == ["job-0", "job-1", "job-2"]


async def test_after_max_attempts_a_job_moves_to_the_dead_letter_table_and_can_be_retried(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.available = False
    offloader = Offloader(engine, outbox=fast_outbox(tmp_path / "outbox.db", max_attempts=3))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(Job(jobs.add, 5), job_id="doomed")
        await wait_until(lambda: bool(events(logs, "offload_failed")))
        [failed] = events(logs, "offload_failed")
        assert (failed["job_id"], failed["attempts"], failed["dead_letter"]) == ("doomed", 3, True)
        assert await ref.status() is JobStatus.UNDELIVERED
        [letter] = await offloader.dead_letters()
        assert (letter.job_id, letter.name, letter.attempts) == ("doomed", "add", 3)
        assert "unreachable" in letter.error
        assert letter.payload == '{"args":[5],"kwargs":{}}'

        engine.available = True
        assert await offloader.retry_dead_letters() == 1
        assert await ref.result(timeout=5) == 5
        assert await offloader.dead_letters() == []
    assert events(logs, "offload_dead_letters_requeued")[0]["jobs"] == 1


async def test_cancelling_a_dead_letter_removes_it_so_no_retry_revives_it(
    tmp_path: Path, logs: Logs
) -> None:
    engine = Engine()
    engine.available = False
    offloader = Offloader(engine, outbox=fast_outbox(tmp_path / "outbox.db", max_attempts=1))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(Job(jobs.add, 5), job_id="abandoned")
        await wait_until(lambda: bool(events(logs, "offload_failed")))
        assert await ref.cancel() is True
        assert await offloader.dead_letters() == []
        engine.available = True
        assert await offloader.retry_dead_letters() == 0
    assert engine.submissions == []


async def test_a_slow_engine_counts_as_down_after_the_call_timeout(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.hang = True
    offloader = Offloader(engine, outbox=fast_outbox(tmp_path / "o.db"), call_timeout=0.05)
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        [deferred] = events(logs, "offload_deferred")
        assert "did not take job 'add' within 0.05s" in deferred["reason"]
        engine.hang = False
        assert await ref.result(timeout=5) == 1


async def test_a_hand_off_waits_on_a_slow_engine_past_the_scheduler_s_timeout_unreported(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    """Only the call timeout bounds a hand-off: the scheduler's task timeout and slow-task
    warning are for the app's own tasks, and waiting on an engine is no misuse of the loop."""
    engine = Engine()
    engine.latency = 0.2
    offloader = Offloader(engine, outbox=None, call_timeout=2)
    async with Scheduler(offload=offloader, timeout=0.05, slow_threshold=0.02) as scheduler:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        assert await ref.result(timeout=5) == 1
    [hand_off] = lightwork_tasks.tasks
    assert hand_off.state is lightwork.TaskState.COMPLETED
    assert hand_off.duration is not None
    # The engine's latency, within uvloop's timers, which keep milliseconds and may fire early.
    assert hand_off.duration >= engine.latency - 0.002
    assert not events(logs, "background_task_slow")
    assert not events(logs, "background_task_timed_out")


async def test_right_after_a_failure_new_jobs_go_straight_to_the_outbox(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.available = False
    outbox = Outbox(tmp_path / "o.db", backoff=60)  # a long "moment" after the failure
    offloader = Offloader(engine, outbox=outbox)
    async with Scheduler(offload=offloader) as scheduler, offloader:
        scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        scheduler.offload(jobs.add, 2)
        await lightwork_tasks.join()
        assert engine.attempts == 1  # the second job did not wait on the dead engine
        assert len(events(logs, "offload_deferred")) == 2
        assert await outbox.count("memory") == 2


async def test_a_job_the_engine_refuses_for_good_is_given_up_at_once(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.refuse = True
    offloader = Offloader(engine, outbox=fast_outbox(tmp_path / "o.db"))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        assert await ref.status() is JobStatus.UNDELIVERED
        [failed] = events(logs, "offload_failed")
        assert "refuses this job for good" in failed["reason"]
        assert len(await offloader.dead_letters()) == 1


async def test_without_an_outbox_an_unreachable_engine_loses_the_job_loudly(
    lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.available = False
    offloader = Offloader(engine, outbox=None)
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        assert await ref.status() is JobStatus.UNDELIVERED
    [failed] = events(logs, "offload_failed")
    assert failed["hint"] == "configure an Outbox to keep it"
    assert failed["log_level"] == "error"


async def test_a_hand_off_cancelled_at_shutdown_is_kept_for_the_next_run(
    tmp_path: Path, logs: Logs
) -> None:
    engine = Engine()
    engine.hang = True
    outbox = Outbox(tmp_path / "o.db", backoff=60)
    offloader = Offloader(engine, outbox=outbox, call_timeout=30)
    async with offloader:
        async with Scheduler(offload=offloader, drain_timeout=0.05) as scheduler:
            scheduler.offload(Job(jobs.add, 1), job_id="interrupted")
            await wait_until(lambda: engine.attempts == 1)
        [deferred] = events(logs, "offload_deferred")
        assert (deferred["job_id"], deferred["reason"]) == ("interrupted", "cancelled at shutdown")
        assert await outbox.where("memory", "interrupted") == "outbox"


async def test_a_hand_off_cancelled_at_shutdown_before_its_first_step_is_kept_too(
    tmp_path: Path, logs: Logs
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    offloader = Offloader(Engine(), outbox=outbox)
    async with offloader, Scheduler(offload=offloader) as scheduler:
        ref = scheduler.offload(Job(jobs.add, 1), job_id="never-stepped")
        assert ref._delivery is not None
        scheduler._cancel(ref._delivery, "shutdown")  # as the drain deadline does
        with pytest.raises(lightwork.TaskCancelledError):
            await ref._delivery
        assert await ref.status() is JobStatus.DEFERRED
        assert await outbox.where("memory", "never-stepped") == "outbox"
        assert (offloader._courier.handing_over, offloader._courier.unstarted) == ({}, {})
    [deferred] = events(logs, "offload_deferred")
    assert deferred["reason"] == "cancelled at shutdown"


async def test_a_hand_off_never_waits_for_a_slot_so_shutdown_cannot_drop_it(
    tmp_path: Path,
) -> None:
    engine, busy = Engine(), asyncio.Event()
    offloader = Offloader(engine, outbox=Outbox(tmp_path / "o.db"))
    scheduler = Scheduler(offload=offloader, max_concurrency=1, max_pending=1, drain_timeout=0.1)
    async with offloader, scheduler:
        scheduler.add_task(busy.wait())  # holds the only slot past the drain deadline
        queued = scheduler.add_task(busy.wait())  # fills the queue
        ref = scheduler.offload(jobs.add, 1)  # neither queued nor refused
    assert queued.state is lightwork.TaskState.DROPPED
    assert ref._delivery is not None
    assert ref._delivery.state is lightwork.TaskState.COMPLETED
    assert [s.job_id for s in engine.submissions] == [ref.job_id]


async def test_cancelling_a_deferred_job_takes_it_out_of_the_outbox(
    tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    engine = Engine()
    engine.available = False
    offloader = Offloader(engine, outbox=Outbox(tmp_path / "o.db", backoff=60))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        assert await ref.cancel() is True
        assert await ref.status() is JobStatus.UNKNOWN  # the engine never had it
        assert offloader.outbox is not None
        assert await offloader.outbox.count("memory") == 0


async def test_each_destination_replays_only_its_own_jobs(
    tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    path = tmp_path / "shared.db"
    for destination in ("queue-a", "queue-b"):
        down = Engine(destination)
        down.available = False
        offloader = Offloader(down, outbox=Outbox(path, backoff=60))
        async with Scheduler(offload=offloader) as scheduler, offloader:
            scheduler.offload(Job(jobs.add, 1), job_id=f"for-{destination}")
            await lightwork_tasks.join()
    engine_b = Engine("queue-b")
    async with Offloader(engine_b, outbox=fast_outbox(path)) as offloader_b:
        assert await offloader_b.job("for-queue-b").result(timeout=5) == 1
        assert offloader_b.outbox is not None
        assert await offloader_b.outbox.count("queue-a") == 1
    assert [s.job_id for s in engine_b.submissions] == ["for-queue-b"]


def test_the_outbox_checks_its_settings_and_jitters_its_backoff(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Outbox(tmp_path / "o.db", max_attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        Outbox(tmp_path / "o.db", backoff=-1)
    outbox = Outbox(tmp_path / "o.db", backoff=1, max_backoff=8)
    for attempts, ceiling in ((1, 1), (2, 2), (3, 4), (4, 8), (40, 8)):
        delay = outbox.retry_delay(attempts)
        assert ceiling / 2 <= delay <= ceiling
    assert not (tmp_path / "o.db").exists()  # created only when a job is first deferred


class GatedEngine(Engine):
    """An engine that holds each hand-off it takes at a gate, so a test can act meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.taking = asyncio.Event()
        self.gate = asyncio.Event()

    async def submit(self, submission: Submission) -> None:
        if self.available:
            self.taking.set()
            await self.gate.wait()
        await super().submit(submission)


async def test_cancelling_a_job_a_round_is_handing_over_is_left_to_the_engine(
    tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    engine = GatedEngine()
    engine.available = False
    offloader = Offloader(engine, outbox=fast_outbox(tmp_path / "o.db", max_attempts=None))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        engine.available = True
        await asyncio.wait_for(engine.taking.wait(), 5)  # a round leased the job, hands it over
        # The outbox keeps a leased job: the engine, which does not have it yet, says no.
        assert await ref.cancel() is False
        assert offloader.outbox is not None
        assert await offloader.outbox.where("memory", ref.job_id) == "outbox"
        engine.gate.set()
        assert await ref.result(timeout=5) == 1  # not cancelled, so it ran


async def test_a_job_the_outbox_cannot_keep_is_logged_as_lost_not_dead_lettered(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    engine = Engine()
    engine.available = False
    offloader = Offloader(engine, outbox=Outbox(tmp_path))  # a directory: no database there
    async with Scheduler(offload=offloader) as scheduler:
        scheduler.offload(Job(jobs.add, 1), job_id="lost")
        await lightwork_tasks.join()
    [failed] = events(logs, "offload_failed")
    assert "the outbox could not keep it" in failed["reason"]
    assert failed["dead_letter"] is False


async def test_closing_again_closes_an_outbox_that_a_look_into_it_reopened(
    tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    # An earlier test's outbox thread may still be on its way out, on a busy machine.
    await wait_until(lambda: outbox_threads() == 0)
    engine = Engine()
    engine.available = False
    outbox = fast_outbox(tmp_path / "o.db")
    offloader = Offloader(engine, outbox=outbox)
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
    # Closed with the offloader: its thread, too, may still be on its way out.
    await wait_until(lambda: outbox_threads() == 0)
    assert await outbox.where("memory", ref.job_id) == "outbox"  # reopens it
    assert outbox_threads() == 1
    await offloader.aclose()
    await wait_until(lambda: outbox_threads() == 0)  # its connection closed on the way out


def outbox_threads() -> int:
    return sum(thread.name.startswith("lightwork-outbox") for thread in threading.enumerate())
