"""The local process-pool backend, with real worker processes.

Each test starts its own pool (a pool belongs to an event loop), so the tests are few and
each checks several things about one pool.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import pytest

import lightwork
from lightwork import Job, JobStatus, Offloader, Scheduler
from lightwork.backends import LocalBackend
from tests import offload_jobs as jobs
from tests.offload_support import offload_cpu_job_through_app, process_exists
from tests.support import events, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from lightwork.testing import TaskRecorder

Logs = list[MutableMapping[str, Any]]

pytestmark = pytest.mark.slow


async def test_a_cpu_bound_job_runs_in_another_process_and_the_loop_stays_responsive(
    lightwork_tasks: TaskRecorder,
) -> None:
    offloader = Offloader(LocalBackend(max_workers=2))
    async with offloader:
        await offload_cpu_job_through_app(offloader, lightwork_tasks)


async def test_a_failing_or_crashing_job_fails_alone_and_the_pool_goes_on(logs: Logs) -> None:
    offloader = Offloader(LocalBackend(max_workers=1))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        failing = scheduler.offload(jobs.fail, "boom")
        crashing = scheduler.offload(jobs.die)
        unjsonable = scheduler.offload(jobs.unjsonable)
        shouting = scheduler.offload(jobs.shout, "async jobs work too")
        with pytest.raises(lightwork.JobFailedError, match="ValueError: boom"):
            await failing.result(timeout=30)
        with pytest.raises(lightwork.JobFailedError, match="worker process died"):
            await crashing.result(timeout=30)
        with pytest.raises(lightwork.JobFailedError, match="JSON cannot carry"):
            await unjsonable.result(timeout=30)
        assert await shouting.result(timeout=30) == "ASYNC JOBS WORK TOO"
    failed = events(logs, "offload_job_failed")
    assert {e["job"] for e in failed} == {"fail", "die", "unjsonable"}
    assert all("args" not in e for e in failed)


async def test_a_job_past_its_timeout_or_cancelled_has_its_process_killed(
    tmp_path: Path, logs: Logs
) -> None:
    offloader = Offloader(LocalBackend(max_workers=2, timeout=None))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        # Two idle worker processes first, so that the jobs below start at once.
        warming = [scheduler.offload(jobs.nap, str(tmp_path / f"warm{n}"), 0.3) for n in (1, 2)]
        for ref in warming:
            await ref.result(timeout=60)
        too_long = scheduler.offload(
            Job(jobs.nap, str(tmp_path / "timed-out.pid"), 60), options={"timeout": 1.0}
        )
        cancelled = scheduler.offload(jobs.nap, str(tmp_path / "cancelled.pid"), 60)
        await wait_until((tmp_path / "cancelled.pid").exists, 30)
        assert await cancelled.status() is JobStatus.RUNNING
        assert await cancelled.cancel() is True
        with pytest.raises(lightwork.JobFailedError, match=r"past its timeout of 1\.0s"):
            await too_long.result(timeout=30)
        assert await cancelled.status() is JobStatus.CANCELLED
        for name in ("timed-out.pid", "cancelled.pid"):
            pid = int((tmp_path / name).read_text())
            await wait_until(lambda pid=pid: not process_exists(pid), 10)  # type: ignore[misc]
        assert await scheduler.offload(jobs.add, 1, b=1).result(timeout=30) == 2
        with pytest.raises(lightwork.UnsupportedCapabilityError, match="accepts: 'timeout'"):
            scheduler.offload(Job(jobs.add, 1), options={"retries": 2})
    assert [e["job"] for e in events(logs, "offload_job_timed_out")] == ["nap"]
    assert len(events(logs, "offload_job_cancelled")) == 1


async def test_an_id_runs_once_while_remembered_and_a_delay_holds_the_job(
    tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    tally = tmp_path / "tally.txt"
    offloader = Offloader(LocalBackend(max_workers=1, max_results=3))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        first = scheduler.offload(Job(jobs.record, str(tally), "once"), job_id="same")
        again = scheduler.offload(Job(jobs.record, str(tally), "twice"), job_id="same")
        assert await first.result(timeout=30) == await again.result(timeout=30) == "once"
        assert await scheduler.offload(Job(jobs.whoami), job_id="w").result(timeout=30) == "w"
        delayed = scheduler.offload(Job(jobs.add, 1), delay=0.3)
        await lightwork_tasks.join()
        assert await delayed.status() is JobStatus.QUEUED
        assert await delayed.result(timeout=30) == 1
        await scheduler.offload(jobs.add, 2).result(timeout=30)
        assert await first.status() is JobStatus.UNKNOWN  # forgotten beyond max_results
    assert tally.read_text() == "once\n"


async def test_closing_waits_for_jobs_then_kills_what_still_runs(
    tmp_path: Path, logs: Logs
) -> None:
    backend = LocalBackend(max_workers=1, drain_timeout=0.2)
    offloader = Offloader(backend)
    async with Scheduler(offload=offloader) as scheduler:
        ref = scheduler.offload(jobs.nap, str(tmp_path / "nap.pid"), 60)
        await wait_until((tmp_path / "nap.pid").exists, 30)
        await offloader.aclose()
        assert await backend.inspect(ref.job_id) == lightwork.backends.JobSnapshot(
            JobStatus.CANCELLED
        )
    pid = int((tmp_path / "nap.pid").read_text())
    await wait_until(lambda: not process_exists(pid), 10)
    assert [e["job"] for e in events(logs, "offload_job_cancelled")] == ["nap"]


async def test_the_default_scheduler_offloads_to_a_local_pool(
    lightwork_tasks: TaskRecorder,
) -> None:
    async with Scheduler() as scheduler:
        ref = scheduler.offload(jobs.pid)
        assert await ref.result(timeout=30) != os.getpid()
        await scheduler.offloader.aclose()


def test_the_local_backend_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        LocalBackend(max_workers=0)
    with pytest.raises(ValueError, match="timeout"):
        LocalBackend(timeout=-1)
    assert LocalBackend().capabilities.remote is False
    assert repr(LocalBackend(max_workers=3)) == "<LocalBackend max_workers=3 running=0>"


async def test_a_bad_timeout_option_fails_at_the_call_not_after_the_response(
    lightwork_tasks: TaskRecorder,
) -> None:
    offloader = Offloader(LocalBackend(max_workers=1))
    async with Scheduler(offload=offloader) as scheduler, offloader:
        with pytest.raises(ValueError, match=r"options\['timeout'\] must be a positive"):
            scheduler.offload(Job(jobs.add, 1), options={"timeout": -5})
        with pytest.raises(TypeError, match=r"options\['timeout'\] must be a number"):
            scheduler.offload(Job(jobs.add, 1), options={"timeout": "60"})
        assert lightwork_tasks.names() == []  # nothing was handed over
        no_limit = scheduler.offload(Job(jobs.add, 2), options={"timeout": None})
        assert await no_limit.result(timeout=30) == 2
