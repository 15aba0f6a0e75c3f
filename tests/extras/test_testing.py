"""The pytest plugin and ``TaskRecorder``, as a user's own test suite would use them."""

from __future__ import annotations

import asyncio

import pytest

from lightwork import Scheduler, TaskState
from lightwork.testing import TaskRecorder


def test_the_fixture_is_installed_by_the_plugin_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from starlette.testclient import TestClient

        import lightwork
        from lightwork import TaskState


        async def send_email(address):
            return f"sent to {address}"


        async def fail():
            raise ValueError("smtp down")


        async def signup(request):
            background = lightwork.get_background(request)
            background.add_task(send_email, "ada@example.com")
            background.add_task(fail)
            return PlainTextResponse("ok")


        app = Starlette(
            routes=[Route("/signup", signup)],
            middleware=[Middleware(lightwork.BackgroundMiddleware)],
        )


        def test_signup(lightwork_tasks):
            with TestClient(app) as client:
                client.get("/signup")
                lightwork_tasks.wait()
            assert lightwork_tasks.names() == ["send_email", "fail"]
            assert lightwork_tasks.names(TaskState.COMPLETED) == ["send_email"]
            [failed] = lightwork_tasks.in_state(TaskState.FAILED)
            assert str(failed.exception()) == "smtp down"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


async def test_join_waits_for_tasks_on_the_current_loop() -> None:
    release = asyncio.Event()
    with TaskRecorder() as recorder:
        async with Scheduler() as scheduler:
            handle = scheduler.add_task(release.wait())
            asyncio.get_running_loop().call_later(0.01, release.set)
            await recorder.join()
            assert handle.state is TaskState.COMPLETED


async def test_waiting_too_long_names_the_unfinished_tasks() -> None:
    with TaskRecorder() as recorder:
        async with Scheduler(drain_timeout=0.01) as scheduler:
            scheduler.add_task(asyncio.sleep(10), name="forever")
            with pytest.raises(TimeoutError, match="forever"):
                await recorder.join(timeout=0.01)
            with pytest.raises(TimeoutError, match="forever"):
                recorder.wait(timeout=0.01)
    assert "tasks=1 unfinished=0" in repr(recorder)


async def test_a_task_added_before_recording_does_not_end_the_wait_for_recorded_ones() -> None:
    leftover_may_end, recorded_may_end = asyncio.Event(), asyncio.Event()
    async with Scheduler() as scheduler:
        leftover = scheduler.add_task(leftover_may_end.wait(), name="leftover")
        with TaskRecorder() as recorder:
            leftover_may_end.set()
            await leftover  # it ends while recording, but was never recorded
            recorded = scheduler.add_task(recorded_may_end.wait(), name="recorded")
            with pytest.raises(TimeoutError, match="recorded"):
                await recorder.join(timeout=0.05)
            recorded_may_end.set()
            await recorder.join()
            assert recorded.state is TaskState.COMPLETED
            assert recorder.names() == ["recorded"]


async def test_waiting_too_long_names_a_task_whose_callback_still_runs() -> None:
    release = asyncio.Event()

    async def on_complete(_: object) -> None:
        await release.wait()

    with TaskRecorder() as recorder:
        async with Scheduler() as scheduler:
            scheduler.add_task(asyncio.sleep(0), name="reported", on_complete=on_complete)
            with pytest.raises(TimeoutError, match=r"'reported'.*\(its callback still runs\)"):
                await recorder.join(timeout=0.05)
            release.set()
            await recorder.join()
