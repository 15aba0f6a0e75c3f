"""A test that asserts on log events, with the request's context merged in."""

import structlog
from request_ids import app
from starlette.testclient import TestClient
from structlog.testing import capture_logs

import lightwork
from lightwork import TaskState
from lightwork.testing import TaskRecorder


def test_the_confirmation_is_logged_with_the_request_id(lightwork_tasks: TaskRecorder) -> None:
    """Capture events with the request's context (request_id...) and the task's (task...)."""
    processors = [structlog.contextvars.merge_contextvars, lightwork.add_log_fields]
    with (
        capture_logs(processors=processors) as logs,
        TestClient(app) as client,
    ):
        client.post("/orders/42", headers={"X-Request-ID": "ticket-1234"})
        lightwork_tasks.wait()
    [task] = lightwork_tasks.tasks
    assert task.state is TaskState.COMPLETED
    [sent] = [e for e in logs if e["event"] == "confirmation_sent"]
    assert sent["request_id"] == "ticket-1234"
    assert (sent["task"], sent["task_id"]) == ("send_confirmation", task.id)
