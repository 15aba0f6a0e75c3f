"""The offload examples, run as their READMEs say: real apps, real workers, real Redis."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from tests.offload_servers import (
    ROOT,
    RedisServer,
    redis_server_fixture,  # noqa: F401 -- the module's redis_server fixture
    start_celery_worker,
    start_saq_worker,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


def test_the_local_example_runs_with_no_server() -> None:
    finished = subprocess.run(
        [sys.executable, "examples/offload_local.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert "POST /primes -> 'primes-300000'" in finished.stdout
    assert "25997 primes below 300000, counted in process" in finished.stdout


def wait_for_result(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (body := client.get(f"/jobs/{job_id}").json())["status"] != "completed":
        assert body["status"] in ("submitting", "queued", "running"), body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    result: dict[str, Any] = body["result"]
    return result


def load_app(module: str, monkeypatch: pytest.MonkeyPatch, server: RedisServer, tmp: Path) -> Any:
    """Import an example's app module as uvicorn would, configured by its environment."""
    for name in ("REDIS_URL", "BROKER_URL"):
        monkeypatch.setenv(name, server.url)
    monkeypatch.setenv("OUTBOX_PATH", str(tmp / "outbox.sqlite3"))
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(module).app


def test_the_saq_example_app_and_worker(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = load_app("examples.offload_saq.app", monkeypatch, redis_server, tmp_path)
    with (
        start_saq_worker(redis_server, tmp_path, "examples.offload_saq.worker.settings"),
        TestClient(app) as client,
    ):
        response = client.post("/primes?below=20000")
        assert response.status_code == 202
        assert response.json() == {"job_id": "primes-20000"}
        assert wait_for_result(client, "primes-20000")["primes"] == 2262


def test_the_celery_example_app_and_worker(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = load_app("examples.offload_celery.app", monkeypatch, redis_server, tmp_path)
    with (
        start_celery_worker(redis_server, tmp_path, "examples.offload_celery.worker"),
        TestClient(app) as client,
    ):
        response = client.post("/reports/2026-11")
        assert response.status_code == 202
        assert wait_for_result(client, "report-2026-11")["orders"] == 400_000
        assert client.get("/jobs/nope").json()["status"] == "unknown"
