"""SIGTERM in the middle of a burst: real uvicorn in a subprocess, and the logs as the witness.

The app (``tests/load_app.py``) logs JSON lines to a file. Clients on a few keep-alive
connections send a bounded burst of requests, each adding tasks of every kind; once half
the responses are in, the server gets SIGTERM. Afterwards the log must show every accepted
task ending exactly once, and a closing summary whose counts match the events.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import pytest

from lightwork import TaskState
from tests.offload_servers import Worker, free_port, python
from tests.outcomes import TERMINAL_EVENTS, ends_by_task

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

REQUESTS: Final = 300
CONNECTIONS: Final = 6
SIGTERM_AFTER: Final = REQUESTS // 2
BOUND_S: Final = 30.0
"""A deadline for what must end by itself (start-up, exit, a client): never a speed limit."""


class Burst:
    """Send ``REQUESTS`` requests over ``CONNECTIONS`` keep-alive connections, from threads."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered: list[dict[str, Any]] = []
        self.half_answered = threading.Event()
        self._lock = threading.Lock()
        self._next = iter(range(REQUESTS))

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        return threads

    def _claim(self) -> int | None:
        with self._lock:
            return next(self._next, None)

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=BOUND_S)
        try:
            while (i := self._claim()) is not None:
                try:
                    connection.request("GET", f"/work/{i}")
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException):
                    # The server shut this connection: on shutdown, or after a 500.
                    connection.close()
                    if not self._still_serving():
                        return
                    continue
                self._record(i, response.status, body)
        finally:
            connection.close()

    def _record(self, i: int, status: int, body: bytes) -> None:
        answer = {"request": i, "status": status}
        if status != 500:
            answer["task_ids"] = json.loads(body)["task_ids"]
        with self._lock:
            self.answered.append(answer)
            if len(self.answered) >= SIGTERM_AFTER:
                self.half_answered.set()

    def _still_serving(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=BOUND_S).close()
        except OSError:
            return False
        return True


def expected_end(request: int, kind: str) -> TaskState:
    """Return how a task of *kind* added by request number *request* of the app must end."""
    if request % 10 == 9 or (request % 10 == 7 and kind == "on_success"):
        return TaskState.DROPPED  # the handler raised, or answered 404
    return KIND_ENDS.get(kind, TaskState.COMPLETED)


KIND_ENDS: Final = {
    "fail": TaskState.FAILED,
    "timeout": TaskState.TIMED_OUT,
    "long": TaskState.CANCELLED,  # still running at shutdown, after the drain deadline
}
TIMEOUT_TASK_MS: Final = 100
"""The "timeout" tasks' timeout in ``load_app``: one started less than this before the drain
deadline (its request answered late in the shutdown) is cancelled by the shutdown first."""


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def serves(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("loop", "http"), [("asyncio", "h11"), ("uvloop", "httptools")], ids=["asyncio", "uvloop"]
)
def test_sigterm_mid_burst_leaves_every_accepted_task_one_logged_end(
    loop: str, http: str, tmp_path: Path
) -> None:
    port, log_path = free_port(), tmp_path / "app.jsonl"
    command = python(
        "-m", "uvicorn", "tests.load_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--loop", loop, "--http", http, "--lifespan", "on", "--log-level", "warning",
    )  # fmt: skip
    env = {"LIGHTWORK_LOAD_LOG": str(log_path)}
    with Worker(command, env, tmp_path / "uvicorn.log") as server:
        server.start()
        server.wait_until(lambda: serves(port), BOUND_S)
        burst = Burst(port)
        clients = burst.run()
        assert burst.half_answered.wait(BOUND_S), server.output()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # Once shut down, uvicorn raises the signal it caught again: so its exit status.
        assert server.process.wait(BOUND_S) == -signal.SIGTERM, server.output()
        for client in clients:
            client.join(BOUND_S)
            assert not client.is_alive()
    records = read_log(log_path)
    additions = events_named(records, "load_task_added")
    added = {r["task_id"] for r in additions}
    answered = {i for a in burst.answered for i in a.get("task_ids", [])}
    assert len(burst.answered) >= SIGTERM_AFTER
    assert answered <= added

    ends = ends_by_task(records)
    assert set(ends) == added, "a task ended that was never added, or an added one never ended"
    assert [i for i in added if len(ends[i]) != 1] == []
    states = Counter(state for [state] in ends.values())
    assert events_named(records, "background_task_abandoned") == []
    assert {c["reason"] for c in events_named(records, "background_task_cancelled")} == {"shutdown"}
    cancelled_before_timeout = {
        r["task_id"]
        for r in events_named(records, "background_task_cancelled")
        if r.get("duration_ms", 0) < TIMEOUT_TASK_MS
    }
    wrong = {
        (r["request"], r["kind"], ends[r["task_id"]][0])
        for r in additions
        if ends[r["task_id"]][0] is not expected_end(r["request"], r["kind"])
        and not (r["kind"] == "timeout" and r["task_id"] in cancelled_before_timeout)
    }
    assert wrong == set()

    [closed] = events_named(records, "background_scheduler_closed")
    assert closed["added"] == len(added)
    assert closed["running"] == 0
    assert {state.value: closed[state.value] for state in TERMINAL_EVENTS.values()} == {
        state.value: states[state] for state in TERMINAL_EVENTS.values()
    }
    # Every kind of end happened (but offloaded: this app has no queue limits to overflow):
    # long tasks were still running when SIGTERM came.
    assert all(
        states[state] for state in TERMINAL_EVENTS.values() if state is not TaskState.OFFLOADED
    ), states
    assert records[-1]["event"] == "background_scheduler_closed"


def events_named(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == name]
