"""OpenTelemetry spans of real tasks, recorded by the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import lightwork
from lightwork import Scheduler, TaskState
from lightwork._core._lifecycle import observers
from lightwork.otel import TaskTracer
from lightwork.testing import TaskRecorder


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracer(provider: TracerProvider) -> Iterator[TaskTracer]:
    with TaskTracer(tracer_provider=provider) as installed:
        yield installed


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    async with Scheduler() as running:
        yield running


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def pause(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def test_a_tasks_span_is_a_child_of_the_span_that_added_it(
    tracer: TaskTracer,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    scheduler: Scheduler,
) -> None:
    with provider.get_tracer("app").start_as_current_span("POST /signup") as request_span:
        handle = scheduler.add_task(pause(0), name="welcome_email")
    await handle
    [span] = spans_named(exporter, "task welcome_email")
    assert span.parent is not None
    assert span.parent.span_id == request_span.get_span_context().span_id
    assert span.context is not None
    assert span.context.trace_id == request_span.get_span_context().trace_id
    assert span.status.status_code is trace.StatusCode.OK
    assert span.attributes is not None
    assert span.attributes["lightwork.task.name"] == "welcome_email"
    assert span.attributes["lightwork.task.id"] == handle.id
    assert span.attributes["lightwork.task.state"] == "completed"
    assert span.attributes["lightwork.task.blocked_ms"] >= 0  # type: ignore[operator]
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.end_time >= span.start_time


async def test_spans_made_inside_the_task_are_its_children(
    tracer: TaskTracer,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    scheduler: Scheduler,
) -> None:
    async def call_api() -> None:
        await asyncio.sleep(0)
        with provider.get_tracer("http-client").start_as_current_span("GET api.example"):
            await asyncio.sleep(0)

    await scheduler.add_task(call_api())
    [task_span] = spans_named(exporter, "task call_api")
    [inner] = spans_named(exporter, "GET api.example")
    assert inner.parent is not None
    assert task_span.context is not None
    assert inner.parent.span_id == task_span.context.span_id
    assert task_span.parent is None  # added outside any span: a root of its own


async def test_a_failed_task_records_its_exception_and_an_error_status(
    tracer: TaskTracer, exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    async def charge_card() -> None:
        await asyncio.sleep(0)
        raise ValueError("card declined")

    with pytest.raises(ValueError, match="card declined"):
        await scheduler.add_task(charge_card())
    [span] = spans_named(exporter, "task charge_card")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "ValueError: card declined"
    assert span.attributes is not None
    assert span.attributes["lightwork.task.state"] == "failed"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"


async def test_a_timed_out_task_is_an_error_and_a_cancelled_one_is_not(
    tracer: TaskTracer, exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    timed_out = scheduler.add_task(pause(10), name="slow", timeout=0.01)
    cancelled = scheduler.add_task(pause(10), name="stopped")
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(lightwork.TaskTimeoutError):
        await timed_out
    with pytest.raises(lightwork.TaskCancelledError):
        await cancelled
    [slow] = spans_named(exporter, "task slow")
    assert slow.status.status_code is trace.StatusCode.ERROR
    assert slow.attributes is not None
    assert slow.attributes["lightwork.task.state"] == "timed_out"
    assert slow.events == ()  # a timeout is lightwork's doing, not an exception of the task
    [stopped] = spans_named(exporter, "task stopped")
    assert stopped.status.status_code is trace.StatusCode.UNSET
    assert stopped.attributes is not None
    assert stopped.attributes["lightwork.task.state"] == "cancelled"


def test_a_task_dropped_with_its_request_still_has_a_span_under_the_request(
    tracer: TaskTracer,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    lightwork_tasks: TaskRecorder,
) -> None:
    async def signup(request: Request) -> PlainTextResponse:
        with provider.get_tracer("app").start_as_current_span("POST /signup"):
            lightwork.get_background(request).add_task(pause(0), name="welcome_email")
            raise RuntimeError("database down")

    app = Starlette(
        routes=[Route("/signup", signup, methods=["POST"])],
        middleware=[Middleware(lightwork.BackgroundMiddleware)],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/signup").status_code == 500
        lightwork_tasks.wait()
    [handle] = lightwork_tasks.tasks
    assert handle.state is TaskState.DROPPED
    [request_span] = spans_named(exporter, "POST /signup")
    [span] = spans_named(exporter, "task welcome_email")
    assert span.parent is not None
    assert request_span.context is not None
    assert span.parent.span_id == request_span.context.span_id
    assert span.attributes is not None
    assert span.attributes["lightwork.task.state"] == "dropped"
    assert span.attributes["lightwork.task.route"] == "POST /signup"
    assert span.start_time == span.end_time  # it never ran


async def test_only_tasks_added_while_installed_get_a_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    tracer = TaskTracer(tracer_provider=provider)
    release = asyncio.Event()
    before = scheduler.add_task(release.wait(), name="before")
    tracer.install()
    tracer.install()  # twice is once
    assert observers.count(tracer) == 1
    try:
        await scheduler.add_task(pause(0), name="during")
        release.set()
        await before
    finally:
        tracer.uninstall()
    assert tracer not in observers
    await scheduler.add_task(pause(0), name="after")
    assert [s.name for s in exporter.get_finished_spans()] == ["task during"]


async def test_after_uninstall_the_spans_already_open_still_end_with_their_tasks(
    provider: TracerProvider, exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    release = asyncio.Event()
    with TaskTracer(tracer_provider=provider) as tracer:
        draining = scheduler.add_task(release.wait(), name="draining")
        await asyncio.sleep(0)  # it has started: its span is open
    assert "installed=False open_spans=1" in repr(tracer)
    assert tracer in observers  # until its last span ends
    late = scheduler.add_task(pause(0), name="late")
    release.set()
    await draining
    await late
    [span] = exporter.get_finished_spans()
    assert span.name == "task draining"
    assert span.attributes is not None
    assert span.attributes["lightwork.task.state"] == "completed"
    assert tracer not in observers


async def test_a_tracer_leaving_as_its_last_task_ends_does_not_hide_that_end_from_others(
    provider: TracerProvider, scheduler: Scheduler
) -> None:
    release = asyncio.Event()
    with TaskTracer(tracer_provider=provider), TaskRecorder() as recorder:
        handle = scheduler.add_task(release.wait(), name="traced")
        await asyncio.sleep(0)
    # The tracer has been uninstalled; it leaves the observers as its span ends, and the
    # recorder, told after it, must still hear of that end.
    with recorder:
        release.set()
        await handle
        await recorder.join(timeout=1)
    assert recorder.names(TaskState.COMPLETED) == ["traced"]
