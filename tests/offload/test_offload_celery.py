"""The Celery backend against a real redis-server and a real Celery worker (prefork pool)."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import celery  # type: ignore[import-untyped]
import pytest
import redis

import lightwork
from lightwork import Job, JobStatus, Offloader, Scheduler
from lightwork.backends import Submission
from lightwork.backends.celery import PAYLOAD, CeleryBackend, register_tasks
from tests import offload_jobs as jobs
from tests.offload_servers import (
    RedisServer,
    Worker,
    redis_server_fixture,  # noqa: F401 -- the module's redis_server fixture
    running_redis,
    start_celery_worker,
)
from tests.offload_support import (
    offload_cpu_job_through_app,
    offload_through_an_outage,
    process_exists,
)
from tests.support import wait_until

if TYPE_CHECKING:
    from lightwork.testing import TaskRecorder

Logs = list[MutableMapping[str, Any]]

pytestmark = pytest.mark.slow

JSON_ONLY: dict[str, Any] = {
    "task_serializer": "json", "result_serializer": "json",
    "accept_content": ["json"], "result_accept_content": ["json"],
}  # fmt: skip
"""The configuration an app of the user's must have for ``CeleryBackend(app=...)``."""


@pytest.fixture(scope="module")
def celery_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with start_celery_worker(redis_server, tmp_path_factory.mktemp("celery")) as worker:
        yield worker


@pytest.fixture
async def offloader(
    redis_server: RedisServer, celery_worker: Worker, tmp_path: Path
) -> AsyncIterator[Offloader]:
    async with Offloader(CeleryBackend(redis_server.url), outbox=tmp_path / "o.db") as running:
        yield running


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise LookupError(pid)


async def test_a_cpu_bound_job_runs_in_a_celery_worker_and_the_loop_stays_responsive(
    offloader: Offloader, celery_worker: Worker, lightwork_tasks: TaskRecorder
) -> None:
    outcome = await offload_cpu_job_through_app(offloader, lightwork_tasks)
    assert parent_of(outcome["pid"]) == celery_worker.pid  # one of the worker's pool processes


async def test_status_result_failure_and_unknown_ids_come_from_celery(
    offloader: Offloader,
) -> None:
    async with Scheduler(offload=offloader) as scheduler:
        assert await scheduler.offload(jobs.add, 2, b=3).result(timeout=30) == 5
        assert await scheduler.offload(jobs.shout, "async").result(timeout=30) == "ASYNC"
        job_id = f"whoami-{uuid.uuid4().hex}"
        assert await scheduler.offload(Job(jobs.whoami), job_id=job_id).result(timeout=30) == job_id
        failing = scheduler.offload(jobs.fail, "in the worker")
        with pytest.raises(lightwork.JobFailedError, match="ValueError: in the worker") as caught:
            await failing.result(timeout=30)
        assert "Traceback" in caught.value.error
        assert await failing.status() is JobStatus.FAILED
        # Celery itself says PENDING for any id; lightwork's SENT mark tells them apart.
        assert await offloader.job("never-sent").status() is JobStatus.UNKNOWN


async def test_the_same_job_id_runs_again_but_keeps_its_first_result(
    offloader: Offloader, tmp_path: Path
) -> None:
    tally = tmp_path / "tally.txt"
    job_id = f"repeat-{uuid.uuid4().hex}"
    async with Scheduler(offload=offloader) as scheduler:
        first = scheduler.offload(Job(jobs.record, str(tally), "first"), job_id=job_id)
        assert await first.result(timeout=30) == "first"
        scheduler.offload(Job(jobs.record, str(tally), "again"), job_id=job_id)
        # Celery does not dedup: the repeat runs (its task sees the same request.id)...
        await wait_until(lambda: "again" in tally.read_text(), 30)
    assert offloader.capabilities.dedup is False
    # ...but a finished job's result is never overwritten.
    assert await offloader.job(job_id).result(timeout=30) == "first"


async def test_a_delayed_job_waits_queued_and_can_be_revoked(
    offloader: Offloader, lightwork_tasks: TaskRecorder
) -> None:
    async with Scheduler(offload=offloader) as scheduler:
        ref = scheduler.offload(Job(jobs.add, 1), delay=60, options={"queue": "celery"})
        await lightwork_tasks.join()
        assert await ref.status() is JobStatus.QUEUED
        assert await ref.cancel() is True
        assert await ref.status() is JobStatus.CANCELLED
        assert await ref.cancel() is False


async def test_a_running_job_is_killed_only_when_the_backend_may_terminate(
    offloader: Offloader, redis_server: RedisServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "nap.pid"
    async with Scheduler(offload=offloader) as scheduler:
        ref = scheduler.offload(jobs.nap, str(pid_file), 30)
        await wait_until(pid_file.exists, 30)
        await wait_until_status(ref, JobStatus.RUNNING)
        assert await ref.cancel() is False  # running, and this backend may not kill it
    terminating = CeleryBackend(redis_server.url, terminate_on_cancel=True)
    async with Offloader(terminating, outbox=None) as killer:
        assert await killer.job(ref.job_id).cancel() is True
        assert await killer.job(ref.job_id).status() is JobStatus.CANCELLED
    pid = int(pid_file.read_text())
    await wait_until(lambda: not process_exists(pid), 30)


async def wait_until_status(ref: lightwork.JobRef[Any], status: JobStatus) -> None:
    statuses: list[JobStatus] = []

    async def reached() -> bool:
        statuses.append(await ref.status())
        return statuses[-1] is status

    for _ in range(600):
        if await reached():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{ref!r} never reached {status}: {statuses[-5:]}")


def test_pickle_is_refused_and_no_result_backend_means_no_status(redis_server: RedisServer) -> None:
    pickling = celery.Celery("pickling", broker=redis_server.url, set_as_current=False)
    pickling.conf.update(accept_content=["json", "pickle"])
    with pytest.raises(ValueError, match="JSON only"):
        CeleryBackend(app=pickling)
    blind = celery.Celery(
        "blind", broker=redis_server.url, set_as_current=False, config_source=JSON_ONLY
    )
    backend = CeleryBackend(app=blind)
    assert (backend.capabilities.status, backend.capabilities.result) == (False, False)
    assert backend.destination == f"celery:127.0.0.1:{redis_server.port}/0"
    with pytest.raises(ValueError, match="unknown Celery send option"):
        CeleryBackend(send_options={"countdown": 5})
    worker_side = celery.Celery("worker-side", set_as_current=False)
    assert register_tasks(worker_side, ["add"]) == ["add"]
    assert worker_side.tasks["add"](2, b=2) == 4


async def test_closing_the_backend_closes_its_connection_to_the_result_backend(
    redis_server: RedisServer,
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as admin:

        def connections() -> set[str]:  # the server's clients, but for this test's own
            own = admin.client_id()
            return {client["addr"] for client in admin.client_list() if client["id"] != own}

        before = connections()
        backend = CeleryBackend(redis_server.url)
        status = await backend.inspect(uuid.uuid4().hex)  # reads the result backend only
        assert status.status is JobStatus.UNKNOWN
        opened = connections() - before
        assert len(opened) == 1
        await backend.aclose()
        # Closed now, not whenever the collector finalises the socket (with a ResourceWarning).
        await wait_until(lambda: not connections() & opened)
        assert (await backend.inspect(uuid.uuid4().hex)).status is JobStatus.UNKNOWN  # anew
        await backend.aclose()

        # A result backend the app shares between its threads is the app's: left connected.
        shared = celery.Celery(
            "shared", broker=redis_server.url, backend=redis_server.url, set_as_current=False,
            config_source={**JSON_ONLY, "result_backend_thread_safe": True},
        )  # fmt: skip
        before = connections()
        backend = CeleryBackend(app=shared)
        await backend.inspect(uuid.uuid4().hex)
        await backend.aclose()
        opened = connections() - before
        assert len(opened) == 1
        assert shared.backend.client.ping()  # through the same pool, still connected
        assert connections() - before == opened
        shared.backend.client.connection_pool.disconnect()


async def test_sending_jobs_subscribes_to_no_result(redis_server: RedisServer) -> None:
    """The client reads states by key: a subscription a job would be two wasted commands."""
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as admin:

        def subscribes() -> int:
            calls: int = admin.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0)
            return calls

        before = subscribes()
        backend = CeleryBackend(redis_server.url)
        for n in range(3):  # to a queue no worker reads: they stay queued
            await backend.submit(
                Submission(
                    name="no-such-job", job_id=f"quiet-{n}", payload="{}", args=[], kwargs={},
                    options={"queue": "lightwork-test-nobody"},
                )
            )  # fmt: skip
        assert (await backend.inspect("quiet-2")).status is JobStatus.QUEUED
        await backend.aclose()
        assert subscribes() == before


async def test_jobs_offloaded_while_redis_is_down_are_delivered_once_it_is_back(
    tmp_path: Path, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    with running_redis() as server, start_celery_worker(server, tmp_path):
        backend = CeleryBackend(server.url, socket_timeout=1, connect_timeout=0.5)
        ran = await offload_through_an_outage(server, backend, tmp_path, lightwork_tasks, logs)
    # Every job ran at least once (Celery does not dedup; a repeat has the same id).
    assert set(ran) == {"before", "during-0", "during-1", "during-2", "during-3"}


async def test_a_job_revoked_while_no_worker_was_online_never_runs(
    tmp_path: Path, lightwork_tasks: TaskRecorder
) -> None:
    tally = tmp_path / "tally.txt"
    with running_redis() as server:
        async with Offloader(CeleryBackend(server.url), outbox=None) as offloader:
            async with Scheduler(offload=offloader) as scheduler:
                revoked = scheduler.offload(jobs.record, str(tally), "revoked")
                await lightwork_tasks.join()
                assert await revoked.status() is JobStatus.QUEUED
                assert await revoked.cancel() is True  # Celery's broadcast reaches no one
                with start_celery_worker(server, tmp_path) as worker:
                    await wait_until(lambda: f"[{revoked.job_id}] ignored" in worker.output(), 30)
                    after = scheduler.offload(jobs.record, str(tally), "after")
                    assert await after.result(timeout=30) == "after"
                assert await revoked.status() is JobStatus.CANCELLED
    assert tally.read_text() == "after\n"


@lightwork.offloadable("celery-test-when")
def when() -> object:
    return datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@lightwork.offloadable("celery-test-kind")
def kind(value: object) -> str:
    return type(value).__name__


KOMBU_TAG = {"__type__": "datetime", "__value__": "2024-01-02T03:04:05"}


async def test_results_and_arguments_are_strict_json_through_a_real_worker(
    offloader: Offloader,
) -> None:
    async with Scheduler(offload=offloader) as scheduler:
        with pytest.raises(lightwork.JobFailedError, match="JSON cannot carry"):
            await scheduler.offload(jobs.unjsonable).result(timeout=30)
        # A dict shaped like kombu's type tag reaches the job as the dict it is, not a datetime.
        with pytest.raises(lightwork.JobFailedError, match="'dict' object has no attribute"):
            await scheduler.offload(jobs.shout, KOMBU_TAG).result(timeout=30)  # type: ignore[call-overload]


def test_the_worker_side_body_checks_results_and_decodes_its_payload_as_plain_json() -> None:
    worker_side = celery.Celery("worker-side-json", set_as_current=False)
    register_tasks(worker_side, ["celery-test-when", "celery-test-kind"])
    with pytest.raises(TypeError, match="'celery-test-when' returned a value JSON cannot carry"):
        worker_side.tasks["celery-test-when"]()  # kombu's JSON would have carried a datetime
    payload = json.dumps({"args": [KOMBU_TAG], "kwargs": {}})
    assert worker_side.tasks["celery-test-kind"](**{PAYLOAD: payload}) == "dict"


async def test_bad_send_option_values_fail_at_the_call(redis_server: RedisServer) -> None:
    offloader = Offloader(CeleryBackend(redis_server.url), outbox=None)
    async with Scheduler(offload=offloader) as scheduler, offloader:
        for options, error in (
            ({"time_limit": -5}, r"options\['time_limit'\] must be a positive"),
            ({"soft_time_limit": "10"}, r"options\['soft_time_limit'\] must be a number"),
            ({"expires": "tomorrow"}, r"options\['expires'\] must be seconds or an ISO 8601"),
            ({"expires": 0}, r"options\['expires'\] must be a positive"),
            ({"queue": 5}, r"options\['queue'\] must be a non-empty string"),
            ({"headers": ["x"]}, r"options\['headers'\] must be a dict"),
        ):
            with pytest.raises((TypeError, ValueError), match=error):
                scheduler.offload(Job(jobs.add, 1), options=options)  # type: ignore[arg-type]
        scheduler.offload(
            Job(jobs.add, 1), options={"expires": "2999-01-01T00:00:00", "queue": "celery"}
        )
