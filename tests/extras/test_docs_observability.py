"""The observability page's example app: metrics, status page and its check, as the page says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from lightwork import TaskState
from lightwork._core._lifecycle import observers
from lightwork.otel import TaskTracer
from lightwork.testing import TaskRecorder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "examples"))

import observability


def test_the_example_exposes_metrics_and_a_guarded_status_page(
    lightwork_tasks: TaskRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATUS_TOKEN", "s3cret")
    with TestClient(observability.app) as client:
        assert any(isinstance(o, TaskTracer) for o in observers)  # installed by the lifespan
        assert client.post("/orders/7/checkout").status_code == 202
        lightwork_tasks.wait()
        [task] = lightwork_tasks.tasks
        assert task.state is TaskState.COMPLETED

        metrics = client.get("/metrics/").text
        samples = {
            (s.name, s.labels.get("task")): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        assert samples["lightwork_tasks_scheduled_total", "generate_invoice"] == 1
        assert samples["lightwork_task_duration_seconds_count", "generate_invoice"] == 1

        status = "/_lightwork/stats.json"
        assert client.get(status).status_code == 403
        assert client.get(status, headers={"x-status-token": "wrong"}).status_code == 403
        stats = client.get(status, headers={"x-status-token": "s3cret"}).json()
        assert stats["tasks"]["generate_invoice"]["completed"] == 1
    assert not any(isinstance(o, TaskTracer) for o in observers)  # and removed at shutdown


def test_without_a_token_configured_nobody_gets_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATUS_TOKEN", raising=False)
    with TestClient(observability.app) as client:
        answer = client.get("/_lightwork/", headers={"x-status-token": ""})
    assert answer.status_code == 403
