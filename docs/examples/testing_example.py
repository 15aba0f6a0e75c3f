"""Testing with Starlette's TestClient and the ``lightwork_tasks`` fixture."""

from collections.abc import Iterator

import pytest
from quickstart import app, outbox  # your app
from starlette.testclient import TestClient

from lightwork import TaskState
from lightwork.testing import TaskRecorder


@pytest.fixture
def client() -> Iterator[TestClient]:
    """``with`` runs the app's lifespan, which starts the scheduler and drains it at the end."""
    with TestClient(app) as test_client:
        yield test_client


def test_signup_sends_a_welcome_email(client: TestClient, lightwork_tasks: TaskRecorder) -> None:
    """Wait for the tasks the request scheduled, then check how they ended."""
    response = client.post("/signup", json={"email": "ada@example.com"})
    assert response.status_code == 201

    lightwork_tasks.wait()  # blocks until every task has ended (5 s at most)

    assert lightwork_tasks.names() == ["send_welcome_email"]
    assert lightwork_tasks.tasks[0].state is TaskState.COMPLETED
    assert "ada@example.com" in outbox
