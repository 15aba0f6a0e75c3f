"""Testing with httpx's AsyncClient over ASGITransport, on the test's own event loop."""

from collections.abc import AsyncIterator

import httpx2
import pytest
from task_options import app, scheduler  # your app, and the scheduler you gave its middleware

from lightwork import TaskState, TaskTimeoutError
from lightwork.testing import TaskRecorder


@pytest.fixture
async def async_client() -> AsyncIterator[httpx2.AsyncClient]:
    """ASGITransport sends no lifespan events: start (and then drain) the scheduler yourself."""
    transport = httpx2.ASGITransport(app=app)
    async with scheduler, httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_stuck_partner_times_out_and_reaches_on_error(
    async_client: httpx2.AsyncClient, lightwork_tasks: TaskRecorder
) -> None:
    """``await join()`` waits on the current loop; each handle tells how its task ended."""
    response = await async_client.post("/webhooks/stuck-partner")
    assert response.status_code == 202

    await lightwork_tasks.join()

    [delivery] = lightwork_tasks.tasks
    assert delivery.name == "partner-webhook"
    assert delivery.state is TaskState.TIMED_OUT
    assert isinstance(delivery.exception(), TaskTimeoutError)
