"""offload(): the checks at the call site, the two call forms, and what a JobRef tells.

The engine here is the in-memory backend (the bridge's test double), so these tests are
about lightwork's own behaviour; the real engines have their own test modules.
"""

from __future__ import annotations

import asyncio
import enum
import math
import pickle
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import lightwork
from lightwork import Job, JobStatus, Offloader, Scheduler
from lightwork.backends import Capabilities, LocalBackend, MemoryBackend
from tests import offload_jobs as jobs
from tests.support import events

if TYPE_CHECKING:
    from starlette.requests import Request

    from lightwork.testing import TaskRecorder

Logs = list[MutableMapping[str, Any]]


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend(run=True)


@pytest.fixture
async def scheduler(backend: MemoryBackend) -> AsyncIterator[Scheduler]:
    offloader = Offloader(backend, outbox=None)
    async with Scheduler(offload=offloader) as running, offloader:
        yield running


# -- the call forms ---------------------------------------------------------------------------


async def test_offload_returns_a_ref_at_once_and_hands_the_job_over_in_the_background(
    scheduler: Scheduler, backend: MemoryBackend, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    ref = scheduler.offload(jobs.add, 2, b=3)
    assert backend.submissions == []  # not yet: the hand-off is a task of its own
    assert await ref.status() is JobStatus.SUBMITTING
    await lightwork_tasks.join()
    assert await ref.status() is JobStatus.COMPLETED
    assert await ref.result() == 5
    assert await ref.snapshot() == lightwork.JobSnapshot(JobStatus.COMPLETED, 5)
    [submission] = backend.submissions
    assert (submission.name, submission.job_id) == ("add", ref.job_id)
    assert (submission.args, submission.kwargs) == ([2], {"b": 3})
    assert lightwork_tasks.names() == ["offload add"]
    [enqueued] = events(logs, "offload_enqueued")
    assert enqueued["log_level"] == "debug"  # routine, like a task's completion
    assert enqueued["job"] == "add"
    assert enqueued["job_id"] == ref.job_id
    assert enqueued["backend"] == "memory"
    assert "args" not in enqueued  # never the job's arguments


async def test_a_job_is_offloaded_by_name_or_function_and_an_async_job_works_too(
    scheduler: Scheduler, lightwork_tasks: TaskRecorder
) -> None:
    by_name = scheduler.offload("tests.offload_jobs.shout", "hi")
    by_function = scheduler.offload(jobs.shout, word="ho")
    await lightwork_tasks.join()
    assert by_name.name == by_function.name == "tests.offload_jobs.shout"
    assert await by_name.result() == "HI"
    assert await by_function.result() == "HO"


async def test_the_job_form_carries_lightworks_options_apart_from_the_jobs_arguments(
    scheduler: Scheduler, backend: MemoryBackend, lightwork_tasks: TaskRecorder
) -> None:
    ref = scheduler.offload(Job(jobs.add, 1, b=1), job_id="sum-1", delay=30, priority=3)
    await lightwork_tasks.join()
    assert ref.job_id == "sum-1"
    [submission] = backend.submissions
    assert submission.job_id == "sum-1"
    assert submission.priority == 3
    assert submission.delay is not None
    assert 29 < submission.delay <= 30


async def test_a_job_knows_its_id_and_nothing_else_does(
    scheduler: Scheduler, lightwork_tasks: TaskRecorder
) -> None:
    sync_job = scheduler.offload(Job(jobs.whoami), job_id="me")
    async_job = scheduler.offload(Job(jobs.whoami_async), job_id="me-too")
    await lightwork_tasks.join()
    assert await sync_job.result() == "me"
    assert await async_job.result() == "me-too"
    assert lightwork.current_job_id() is None


async def test_the_same_job_id_runs_once_where_the_engine_dedups(
    scheduler: Scheduler, backend: MemoryBackend, lightwork_tasks: TaskRecorder
) -> None:
    first = scheduler.offload(Job(jobs.add, 1), job_id="once")
    second = scheduler.offload(Job(jobs.add, 100), job_id="once")
    await lightwork_tasks.join()
    assert len(backend.submissions) == 1
    assert await first.result() == await second.result() == 1


async def test_arguments_reach_the_job_exactly_as_json_carries_them(
    scheduler: Scheduler, backend: MemoryBackend, lightwork_tasks: TaskRecorder
) -> None:
    scheduler.offload("add", (1, 2), b=[3])  # a tuple arrives as a list, on every engine
    await lightwork_tasks.join()
    assert backend.submissions[0].args == [[1, 2]]
    assert backend.submissions[0].payload == '{"args":[[1,2]],"kwargs":{"b":[3]}}'


class Size(enum.IntEnum):
    LARGE = 2


async def test_values_json_changes_arrive_changed_and_plain_ones_unchanged(
    lightwork_tasks: TaskRecorder,
) -> None:
    backend = MemoryBackend()  # not run: add() would fail on these arguments
    async with Scheduler(offload=Offloader(backend, outbox=None)) as scheduler:
        scheduler.offload("add", Size.LARGE, b={1: "one"})
        scheduler.offload("add", "a", b=1.5)
        scheduler.offload("add", None, b=True)
        await lightwork_tasks.join()
    changed, *plain = backend.submissions
    assert (changed.args, changed.kwargs) == ([2], {"b": {"1": "one"}})  # int keys: strings
    assert type(changed.args[0]) is int  # an enum arrives as its value
    assert [(s.args, s.kwargs) for s in plain] == [(["a"], {"b": 1.5}), ([None], {"b": True})]
    assert [type(s.kwargs["b"]) for s in plain] == [float, bool]


# -- errors at the call site -------------------------------------------------------------------


async def test_an_argument_that_json_cannot_carry_is_named(scheduler: Scheduler) -> None:
    with pytest.raises(lightwork.OffloadPayloadError, match=r"argument 'b' of job 'add'"):
        scheduler.offload(jobs.add, 1, b=object())  # type: ignore[arg-type]
    with pytest.raises(lightwork.OffloadPayloadError, match=r"argument 'a' of job 'add'"):
        scheduler.offload(jobs.add, math.nan)  # type: ignore[call-overload]
    assert scheduler.counts()["added"] == 0  # nothing was scheduled


async def test_an_argument_that_holds_itself_is_named_and_one_nested_too_deep_raises(
    scheduler: Scheduler,
) -> None:
    """Arguments are first encoded without the check for cycles: a cycle is still named."""
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(lightwork.OffloadPayloadError, match="Circular reference") as caught:
        scheduler.offload(jobs.add, 1, b=loop)  # type: ignore[arg-type]
    assert "argument 'b' of job 'add'" in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)
    deep: list[object] = []
    for _ in range(100_000):  # past the C recursion limit too, which 3.13 keeps apart
        deep = [deep]
    with pytest.raises(RecursionError):
        scheduler.offload(jobs.add, 1, b=deep)  # type: ignore[arg-type]
    assert scheduler.counts()["added"] == 0


async def test_a_payload_over_the_limit_says_to_pass_a_reference(backend: MemoryBackend) -> None:
    offloader = Offloader(backend, outbox=None, max_payload_bytes=1024)
    async with Scheduler(offload=offloader) as scheduler:
        scheduler.offload(jobs.shout, "x" * 900)  # under the limit
        with pytest.raises(lightwork.OffloadPayloadError) as caught:
            scheduler.offload(jobs.shout, "é" * 600)  # 1200 bytes as UTF-8
    message = str(caught.value)
    assert "over the 1 KiB limit" in message
    assert "store the data elsewhere" in message
    assert "pass a reference" in message


async def test_an_unknown_name_lists_the_known_jobs(scheduler: Scheduler) -> None:
    with pytest.raises(lightwork.JobNotRegisteredError, match="'resize'") as caught:
        scheduler.offload("resize", "cat.png")
    assert "'add'" in str(caught.value)
    assert "'burn-cpu'" in str(caught.value)
    assert isinstance(caught.value, LookupError)


async def test_a_function_that_was_never_registered_is_refused(scheduler: Scheduler) -> None:
    def not_a_job() -> None: ...

    with pytest.raises(lightwork.JobNotRegisteredError, match=r"@lightwork\.offloadable"):
        scheduler.offload(not_a_job)


async def test_arguments_that_do_not_fit_the_signature_fail_at_the_call(
    scheduler: Scheduler,
) -> None:
    with pytest.raises(TypeError, match=r"offload\('add'\): missing a required argument: 'a'"):
        scheduler.offload(jobs.add, b=2)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((), {}, "missing a required argument: 'a'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {"a": 1}, "multiple values for argument 'a'"),
        ((1,), {"c": 3}, "got an unexpected keyword argument 'c'"),
        ((), {"b": 2, "c": 3}, "missing a required argument: 'a'"),
    ],
)
async def test_every_misfit_of_the_signature_is_refused_with_what_is_wrong(
    scheduler: Scheduler, args: tuple[Any, ...], kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(TypeError, match=re.escape(f"offload('add'): {error}")):
        scheduler.offload("add", *args, **kwargs)
    assert scheduler.running == 0  # no hand-off was started


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, 2), {}), ((), {"a": 1}), ((1,), {"b": 2}), ((), {"b": 2, "a": 1})],
)
async def test_every_fit_of_the_signature_is_taken(
    scheduler: Scheduler, backend: MemoryBackend, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert await scheduler.offload("add", *args, **kwargs).result() == sum(args) + sum(
        kwargs.values()
    )
    [submission] = backend.submissions
    assert (submission.args, submission.kwargs) == (list(args), kwargs)


async def test_misused_call_forms_say_how_to_call(scheduler: Scheduler) -> None:
    with pytest.raises(TypeError, match="needs a job's name"):
        scheduler.offload(42)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="no positional arguments after a Job"):
        scheduler.offload(Job(jobs.add, 1), 2)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'b'"):
        scheduler.offload(Job(jobs.add, 1), b=2)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="job_id must be a string"):
        scheduler.offload(Job(jobs.add, 1), job_id="")
    with pytest.raises(TypeError, match="priority must be an integer"):
        scheduler.offload(Job(jobs.add, 1), priority="high")  # type: ignore[call-overload]


async def test_asking_for_what_the_engine_cannot_do_is_an_error_never_a_no_op() -> None:
    bare = MemoryBackend(capabilities=Capabilities(options=frozenset({"queue"})))
    offloader = Offloader(bare, outbox=None)
    async with Scheduler(offload=offloader) as scheduler, offloader:
        for options in ({"delay": 5}, {"priority": 1}):
            with pytest.raises(lightwork.UnsupportedCapabilityError, match="MemoryBackend cannot"):
                scheduler.offload(Job(jobs.add, 1), **options)  # type: ignore[call-overload]
        with pytest.raises(lightwork.UnsupportedCapabilityError, match="accepts: 'queue'"):
            scheduler.offload(Job(jobs.add, 1), options={"retries": 3})
        scheduler.offload(Job(jobs.add, 1), options={"queue": "fast"})
        ref = scheduler.offload(jobs.add, 1)
        with pytest.raises(lightwork.UnsupportedCapabilityError, match="return job results"):
            await ref.result()
        with pytest.raises(lightwork.UnsupportedCapabilityError, match="cancel jobs"):
            await offloader.job(ref.job_id).cancel()


async def test_engine_options_must_be_json() -> None:
    backend = MemoryBackend(capabilities=Capabilities(options=frozenset({"meta"})))
    async with Scheduler(offload=Offloader(backend, outbox=None)) as scheduler:
        with pytest.raises(lightwork.OffloadPayloadError, match="engine options"):
            scheduler.offload(Job(jobs.add, 1), options={"meta": {1, 2}})  # type: ignore[dict-item]


def test_the_scheduler_and_the_offloader_check_their_arguments(tmp_path: Any) -> None:
    with pytest.raises(TypeError, match=r"offload must be a lightwork\.Offloader"):
        Scheduler(offload="redis://")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backend must be an OffloadBackend"):
        Offloader("redis://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_payload_bytes"):
        Offloader(max_payload_bytes=0)
    with pytest.raises(TypeError, match="outbox must be"):
        Offloader(outbox=3)  # type: ignore[arg-type]
    assert isinstance(Scheduler().offloader.backend, LocalBackend)  # the default
    assert Offloader(LocalBackend()).outbox is None  # an in-process engine needs none
    remote = Offloader(MemoryBackend(), outbox=tmp_path / "o.db")
    assert remote.outbox is not None
    assert remote.outbox.path == tmp_path / "o.db"
    assert "outbox" in repr(remote)


# -- what a JobRef tells ---------------------------------------------------------------------


async def test_a_failed_job_raises_job_failed_error_with_the_workers_traceback(
    scheduler: Scheduler, lightwork_tasks: TaskRecorder
) -> None:
    ref = scheduler.offload(jobs.fail, "boom")
    await lightwork_tasks.join()
    assert await ref.status() is JobStatus.FAILED
    with pytest.raises(lightwork.JobFailedError, match="ValueError: boom") as caught:
        await ref.result()
    error = caught.value
    assert (error.job, error.job_id, error.status) == ("fail", ref.job_id, "failed")
    assert "Traceback" in error.error
    again = pickle.loads(pickle.dumps(error))  # it crosses process pools intact
    assert (again.job_id, again.error, str(again)) == (error.job_id, error.error, str(error))


async def test_result_waits_then_gives_up_with_a_timeout_error() -> None:
    backend = MemoryBackend()  # records, does not run
    async with Scheduler(offload=Offloader(backend, outbox=None)) as scheduler:
        ref = scheduler.offload(jobs.add, 1)
        with pytest.raises(lightwork.ResultTimeoutError, match=r"had not ended after 0\.05s"):
            await ref.result(timeout=0.05)
        assert await ref.status() is JobStatus.QUEUED
        await backend.run_queued()
        assert await ref.result() == 1


async def test_an_id_the_engine_never_saw_is_unknown(scheduler: Scheduler) -> None:
    ref = scheduler.offloader.job("never-offloaded")
    assert await ref.status() is JobStatus.UNKNOWN
    with pytest.raises(lightwork.JobNotFoundError, match="never-offloaded"):
        await ref.result()


async def test_cancel_before_the_hand_off_means_the_job_is_never_sent(
    scheduler: Scheduler, backend: MemoryBackend, lightwork_tasks: TaskRecorder
) -> None:
    background = lightwork.Background(scheduler, "no_exception", _request("GET"), released=False)
    ref = background.offload(jobs.add, 1)
    assert await ref.cancel() is True
    background._release(200, None, complete=True)
    await lightwork_tasks.join()
    assert backend.submissions == []
    assert await ref.status() is JobStatus.CANCELLED
    courier = scheduler.offloader._courier
    assert (courier.handing_over, courier.unstarted) == ({}, {})  # forgotten, not kept


async def test_cancel_a_job_the_engine_has_queued() -> None:
    backend = MemoryBackend()
    async with Scheduler(offload=Offloader(backend, outbox=None)) as scheduler:
        ref = scheduler.offload(jobs.add, 1)
        await wait_for_status(ref, JobStatus.QUEUED)
        assert await ref.cancel() is True
        assert await ref.status() is JobStatus.CANCELLED
        assert await ref.cancel() is False


async def wait_for_status(ref: lightwork.JobRef[Any], status: JobStatus) -> None:
    import asyncio  # noqa: PLC0415

    async with asyncio.timeout(5):
        while await ref.status() is not status:
            await asyncio.sleep(0.01)


# -- through a Starlette app ------------------------------------------------------------------


async def offload_sum(request: Request) -> JSONResponse:
    background = lightwork.get_background(request)
    ref = background.offload(Job(jobs.add, int(request.path_params["a"]), b=1), job_id="req")
    if request.query_params.get("fail"):
        raise RuntimeError("the handler failed after offloading")
    return JSONResponse({"job_id": ref.job_id})


async def test_a_request_offloads_after_its_response_and_a_failed_request_drops_its_job(
    backend: MemoryBackend, lightwork_tasks: TaskRecorder, logs: Logs
) -> None:
    offloader = Offloader(backend, outbox=None)
    scheduler = Scheduler(offload=offloader)
    app = Starlette(
        routes=[Route("/sum/{a}", offload_sum, methods=["POST"])],
        middleware=[Middleware(lightwork.BackgroundMiddleware, scheduler)],
    )
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        scheduler,  # what the app's lifespan does; the transport runs no lifespan
        offloader,
        httpx2.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        response = await client.post("/sum/41")
        assert response.json() == {"job_id": "req"}
        await lightwork_tasks.join()
        assert await offloader.job("req").result() == 42

        failed = await client.post("/sum/1?fail=1")
        assert failed.status_code == 500
        await lightwork_tasks.join()
    assert len(backend.submissions) == 1  # the failed request's job was never sent
    dropped = lightwork_tasks.tasks[-1]
    assert dropped.name == "offload add"
    assert dropped.state is lightwork.TaskState.DROPPED
    assert events(logs, "background_task_dropped")


def offload_from_a_thread(request: Request) -> JSONResponse:
    """A sync endpoint: Starlette runs it in a worker thread, off the event loop."""
    ref = lightwork.get_background(request).offload(jobs.add, 20, b=22)
    return JSONResponse({"job_id": ref.job_id})


def test_a_sync_endpoint_offloads_from_its_thread(
    backend: MemoryBackend, lightwork_tasks: TaskRecorder
) -> None:
    offloader = Offloader(backend, outbox=None)
    app = Starlette(
        routes=[Route("/sum", offload_from_a_thread, methods=["POST"])],
        middleware=[Middleware(lightwork.BackgroundMiddleware, Scheduler(offload=offloader))],
    )
    with TestClient(app) as client:
        job_id = client.post("/sum").json()["job_id"]
        lightwork_tasks.wait()
    [submission] = backend.submissions
    assert submission.job_id == job_id
    assert submission.args == [20]


async def test_a_job_looked_up_by_id_while_it_is_being_handed_over_is_submitting() -> None:
    backend = MemoryBackend()
    async with Scheduler(offload=Offloader(backend, outbox=None)) as scheduler:
        background = lightwork.Background(
            scheduler, "no_exception", _request("POST"), released=False
        )
        ref = background.offload(jobs.add, 1)
        found = scheduler.offloader.job(ref.job_id)
        assert await found.status() is JobStatus.SUBMITTING  # not "unknown" to the engine yet
        background._release(200, None, complete=True)
        await wait_for_status(found, JobStatus.QUEUED)
        courier = scheduler.offloader._courier
        assert (courier.handing_over, courier.unstarted) == ({}, {})


async def test_a_task_whose_arguments_misfit_its_job_is_dropped_not_stuck_at_overflow_or_spill(
    logs: Logs,
) -> None:
    # add(a, b=0) called with three arguments: fails as a task, and the bridge refuses it.
    blocker = asyncio.Event()
    scheduler = Scheduler(
        max_concurrency=1, max_pending=1, overflow="offload", pending_at_shutdown="spill",
        offload=Offloader(MemoryBackend(), outbox=None), drain_timeout=1,
    )  # fmt: skip
    await scheduler.start()
    scheduler.add_task(blocker.wait)
    queued = scheduler.add_task(jobs.add, 1, 2, 3)  # type: ignore[call-overload]
    with pytest.raises(lightwork.BackgroundQueueFull):
        scheduler.add_task(jobs.add, 4, 5, 6)  # type: ignore[call-overload]
    blocker.set()
    await scheduler.aclose()  # spills the queued one: refused too
    assert queued.state is lightwork.TaskState.DROPPED
    refused = events(logs, "background_task_offload_refused")
    assert [e["reason"] for e in refused] == ["offload('add'): too many positional arguments"] * 2
    [dropped_at_overflow, dropped_at_spill] = events(logs, "background_task_dropped")
    assert "the queue is full" in dropped_at_overflow["reason"]
    assert dropped_at_spill["reason"].endswith("; the offload bridge refused it")
    assert scheduler.counts()["dropped"] == 2


class Refusing(MemoryBackend):
    """An engine that refuses every job for good until told otherwise."""

    refuse = True

    async def submit(self, submission: lightwork.backends.Submission) -> None:
        if self.refuse:
            raise lightwork.BackendError("the engine refuses this job for good")
        await super().submit(submission)


async def test_a_ref_whose_dead_letter_was_retried_tells_what_the_engine_says(
    tmp_path: Any, lightwork_tasks: TaskRecorder
) -> None:
    backend = Refusing(run=True)
    offloader = Offloader(backend, outbox=tmp_path / "outbox.db")
    async with Scheduler(offload=offloader) as scheduler, offloader:
        ref = scheduler.offload(jobs.add, 1, 2)
        await lightwork_tasks.join()
        undelivered = await ref.snapshot()
        assert undelivered.status is JobStatus.UNDELIVERED
        assert undelivered.error == "the engine refuses this job for good"  # the dead letter's
        with pytest.raises(lightwork.JobFailedError, match="refuses this job for good"):
            await ref.result()
        backend.refuse = False
        assert await offloader.retry_dead_letters() == 1
        assert await ref.result(timeout=5) == 3  # the original ref, not only a fresh one
        assert await ref.status() is JobStatus.COMPLETED


async def test_a_hand_off_that_failed_without_an_outbox_is_undelivered_and_says_where_to_look(
    lightwork_tasks: TaskRecorder,
) -> None:
    async with Scheduler(offload=Offloader(Refusing(run=True), outbox=None)) as scheduler:
        ref = scheduler.offload(jobs.add, 1)
        await lightwork_tasks.join()
        snapshot = await ref.snapshot()
        assert snapshot.status is JobStatus.UNDELIVERED
        assert snapshot.error is not None
        assert "offload_failed" in snapshot.error


async def test_text_utf8_cannot_carry_is_refused_at_the_call_naming_the_argument(
    scheduler: Scheduler,
) -> None:
    name = "caf\udce9.png"  # what os.fsdecode() makes of a file name that is not UTF-8
    with pytest.raises(lightwork.OffloadPayloadError, match=r"argument 'word' of job '.*shout'"):
        scheduler.offload(jobs.shout, name)
    surrogate = re.escape("lone surrogate ('\\udce9')")
    with pytest.raises(lightwork.OffloadPayloadError, match=surrogate):
        scheduler.offload(jobs.shout, "x" * 70_000 + name)  # a size measured as UTF-8
    with pytest.raises(lightwork.OffloadPayloadError, match="argument 'b' of job 'add'"):
        scheduler.offload(jobs.add, 1, b={name: 1})  # type: ignore[arg-type]
    assert scheduler.counts()["added"] == 0


async def test_dict_keys_json_would_make_one_are_refused_and_distinct_ones_taken(
    lightwork_tasks: TaskRecorder,
) -> None:
    backend = MemoryBackend()  # not run: add() would fail on these arguments
    async with Scheduler(offload=Offloader(backend, outbox=None)) as scheduler:
        for value, keys in [
            ({1: "int key", "1": "str key"}, "1 and '1'"),
            ([{"size": {"null": 0, None: 1}}], "None and 'null'"),
            ((0, {True: 1, "true": 2}), "True and 'true'"),
            ({"1.5": 0, 1.5: 1}, "1.5 and '1.5'"),
        ]:
            with pytest.raises(lightwork.OffloadPayloadError) as caught:
                scheduler.offload(jobs.add, 1, b=value)  # type: ignore[arg-type]
            assert str(caught.value).startswith(
                f"argument 'b' of job 'add' has a dict with the keys {keys}, which JSON makes one"
            )
        assert scheduler.counts()["added"] == 0
        distinct: Any = ({1: "a", "2": "b", None: "c"}, [{"1": 0}, {1.5: 1}])
        scheduler.offload(jobs.add, *distinct)
        await lightwork_tasks.join()
    [taken] = backend.submissions
    assert taken.args == [{"1": "a", "2": "b", "null": "c"}, [{"1": 0}, {"1.5": 1}]]


async def test_a_job_id_utf8_cannot_carry_is_refused_at_the_call(scheduler: Scheduler) -> None:
    with pytest.raises(TypeError, match="valid Unicode text"):
        scheduler.offload(Job(jobs.add, 1), job_id="photo-\udce9.jpg")


def _request(method: str) -> dict[str, Any]:
    """The scope of a request to ``/``, for a ``Background`` made without the middleware."""
    return {"type": "http", "method": method, "path": "/", "headers": []}
