"""The SAQ backend against a real redis-server and a real SAQ worker process."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import pytest
import redis
import saq
from saq.job import Status

import lightwork
from lightwork import Job, JobStatus, Offloader, Scheduler
from lightwork.backends.saq import SaqBackend, worker_settings
from tests import offload_jobs as jobs
from tests.offload_servers import (
    RedisServer,
    Worker,
    redis_server_fixture,  # noqa: F401 -- the module's redis_server fixture
    running_redis,
    start_saq_worker,
)
from tests.offload_support import offload_cpu_job_through_app, offload_through_an_outage
from tests.support import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from lightwork.testing import TaskRecorder

Logs = list[MutableMapping[str, Any]]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saq_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with start_saq_worker(redis_server, tmp_path_factory.mktemp("saq")) as worker:
        yield worker


@pytest.fixture
async def offloader(
    redis_server: RedisServer, saq_worker: Worker, tmp_path: Path
) -> AsyncIterator[Offloader]:
    backend = SaqBackend(redis_server.url, job_options={"timeout": 30})
    async with Offloader(backend, outbox=tmp_path / "outbox.db") as running:
        yield running


async def test_a_cpu_bound_job_runs_in_the_saq_worker_and_the_loop_stays_responsive(
    offloader: Offloader, saq_worker: Worker, lightwork_tasks: TaskRecorder
) -> None:
    outcome = await offload_cpu_job_through_app(offloader, lightwork_tasks)
    assert outcome["pid"] == saq_worker.pid


async def test_the_same_job_id_runs_once(
    offloader: Offloader, tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    tally = tmp_path / "tally.txt"
    job_id = f"once-{uuid.uuid4().hex}"  # the module's Redis outlives the test
    async with Scheduler(offload=offloader) as scheduler:
        first = scheduler.offload(Job(jobs.record, str(tally), "first"), job_id=job_id)
        assert await first.result(timeout=30) == "first"
        again = scheduler.offload(Job(jobs.record, str(tally), "again"), job_id=job_id)
        await lightwork_tasks.join()
        assert await again.result(timeout=30) == "first"  # the finished job, not a new run
    assert tally.read_text() == "first\n"


async def test_status_result_failure_and_unknown_ids_come_from_saq(
    offloader: Offloader,
) -> None:
    async with Scheduler(offload=offloader) as scheduler:
        assert await scheduler.offload(jobs.shout, "async").result(timeout=30) == "ASYNC"
        job_id = f"whoami-{uuid.uuid4().hex}"
        assert await scheduler.offload(Job(jobs.whoami), job_id=job_id).result(timeout=30) == job_id
        failing = scheduler.offload(jobs.fail, "in the worker")
        with pytest.raises(lightwork.JobFailedError, match="ValueError: in the worker") as caught:
            await failing.result(timeout=30)
        assert "Traceback" in caught.value.error
        assert await failing.status() is JobStatus.FAILED
        assert await offloader.job("never-sent").status() is JobStatus.UNKNOWN


async def test_a_delayed_job_waits_queued_and_can_be_cancelled(
    offloader: Offloader, lightwork_tasks: TaskRecorder
) -> None:
    async with Scheduler(offload=offloader) as scheduler:
        ref = scheduler.offload(Job(jobs.add, 1), delay=60, options={"retries": 1})
        await lightwork_tasks.join()
        assert await ref.status() is JobStatus.QUEUED
        assert await ref.cancel() is True
        assert await ref.status() is JobStatus.CANCELLED
        assert await ref.cancel() is False


def test_the_backend_names_its_destination_and_checks_options() -> None:
    backend = SaqBackend("redis://:secret@cache.internal:6380/2", queue="images")
    assert backend.destination == "saq:cache.internal:6380/2:images"
    assert "secret" not in repr(backend)
    with pytest.raises(ValueError, match="unknown SAQ job option"):
        SaqBackend(job_options={"queue": "x"})
    settings = worker_settings("redis://127.0.0.1:1/0", names=["add"])
    assert [name for name, _ in settings["functions"]] == ["add"]
    with pytest.raises(lightwork.JobNotRegisteredError):
        worker_settings(names=["no-such-job"])


async def test_jobs_offloaded_while_redis_is_down_are_delivered_once_it_is_back(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    with running_redis() as server, start_saq_worker(server, tmp_path):
        backend = SaqBackend(server.url, socket_timeout=1, connect_timeout=0.5)
        ran = await offload_through_an_outage(server, backend, tmp_path, lightwork_tasks, logs)
    # Every job ran, and exactly once: SAQ dedups by job id.
    assert sorted(ran) == ["before", "during-0", "during-1", "during-2", "during-3"]


async def test_a_first_delivery_of_a_fresh_id_skips_the_duplicate_check(
    redis_server: RedisServer, lightwork_tasks: TaskRecorder
) -> None:
    def reads() -> int:
        with redis.Redis.from_url(redis_server.url) as client:
            stats: dict[str, dict[str, int]] = client.info("commandstats")
        return stats.get("cmdstat_get", {}).get("calls", 0)

    # A queue no worker reads, so that only the enqueues touch Redis.
    unread = Offloader(
        SaqBackend(redis_server.url, queue=f"unread-{uuid.uuid4().hex}"), outbox=None
    )
    async with Scheduler(offload=unread) as scheduler:
        before = reads()
        scheduler.offload(jobs.add, 1)  # lightwork makes the id: it cannot be a repeat
        await lightwork_tasks.join()
        fresh = reads() - before
        scheduler.offload(Job(jobs.add, 2), job_id=f"given-{uuid.uuid4().hex}")
        await lightwork_tasks.join()
        given = reads() - before - fresh
    assert (fresh, given) == (0, 1)  # the caller's id is checked against SAQ's jobs first


async def test_a_job_whose_worker_died_fails_as_swept_rather_than_reading_cancelled(
    redis_server: RedisServer, lightwork_tasks: TaskRecorder
) -> None:
    name = f"orphans-{uuid.uuid4().hex}"  # a queue no live worker reads
    offloader = Offloader(SaqBackend(redis_server.url, queue=name), outbox=None)
    dying_worker = saq.Queue.from_url(redis_server.url, name=name)
    try:
        async with Scheduler(offload=offloader) as scheduler:
            ref = scheduler.offload(Job(jobs.add, 1), options={"timeout": 1})
            await lightwork_tasks.join()
            # A worker takes the job and dies with it, long past its timeout: the sweep any
            # live worker runs aborts such a job, as "swept".
            job = await dying_worker.dequeue()
            assert job is not None
            assert job.key == ref.job_id
            await job.update(status=Status.ACTIVE, attempts=1, started=saq.utils.now() - 60_000)
            assert await dying_worker.sweep(abort=0.1) == [job.id]
            snapshot = await ref.snapshot()
            with pytest.raises(lightwork.JobFailedError, match="swept"):
                await ref.result(timeout=5)
    finally:
        await dying_worker.disconnect()
    assert (snapshot.status, snapshot.error) == (JobStatus.FAILED, "swept")


async def test_closing_on_a_hung_redis_is_bounded_and_closes_the_client_all_the_same() -> None:
    with running_redis() as server:
        assert server.process is not None
        backend = SaqBackend(server.url, socket_timeout=0.5, connect_timeout=0.5)
        server.process.send_signal(signal.SIGSTOP)  # Redis hangs: takes connections, never answers
        try:
            with pytest.raises(lightwork.BackendTimeoutError):
                await backend.inspect("any")
            # Bounded by one socket timeout of lightwork's, not by SAQ's retried unsubscribe.
            with pytest.raises(lightwork.BackendTimeoutError, match="closed all the same"):
                await backend.aclose()
        finally:
            server.process.send_signal(signal.SIGCONT)
        with redis.Redis.from_url(server.url) as client:
            await wait_until(lambda: len(client.client_list()) == 1)  # this client's alone


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -1}, "'timeout' option must be seconds, 0 or more"),
        ({"retries": -1}, "'retries' option must be a whole number, 0 or more"),
        ({"retry_backoff": "yes"}, "'retry_backoff' option must be True, False"),
        ({"meta": ["not", "a", "dict"]}, "'meta' option must be a dict"),
    ],
)
async def test_saq_option_values_are_checked_at_the_call(
    options: dict[str, Any], message: str
) -> None:
    # No Redis needed: the check comes before any call to the engine.
    with pytest.raises(ValueError, match=message):
        SaqBackend("redis://127.0.0.1:1", job_options=options)
    offloader = Offloader(SaqBackend("redis://127.0.0.1:1"), outbox=None)
    async with Scheduler(offload=offloader) as scheduler:
        with pytest.raises(ValueError, match=message):
            scheduler.offload(Job(jobs.add, 1), options=options)
        ref = scheduler.offload(Job(jobs.add, 1), options={"timeout": 60, "retry_backoff": 0.5})
        assert ref._delivery is not None
        ref._delivery.cancel()  # accepted; there is no engine to reach here
