"""Real servers for the offload tests: redis-server and queue workers, as bounded subprocesses.

Each is started on 127.0.0.1 (Redis on a free port), waited for with a deadline, and
stopped by its pid: terminated, then killed if it does not stop in time. Tests skip when
``redis-server`` is not installed, unless ``LIGHTWORK_REQUIRE_REDIS=1`` (set by ``.ci/run``)
makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import pytest
import redis

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT: Final = Path(__file__).resolve().parents[1]
START_DEADLINE_S: Final = 10.0
STOP_DEADLINE_S: Final = 10.0


def require_redis_server() -> str:
    """Return the redis-server binary, or skip (fail under CI) when it is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install -y redis-server)"
        if os.environ.get("LIGHTWORK_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a child by its pid: *sig*, then SIGKILL if it is still there after the deadline."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 that keeps nothing on disk."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """End the server abruptly (SIGKILL), as a crash would."""
        if self.process is not None:
            stop_process(self.process, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """Run a fresh redis-server for the duration of the block."""
    server = RedisServer(require_redis_server())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """A redis-server shared by one test module's tests (import it to use it)."""
    with running_redis() as server:
        yield server


class Worker:
    """A queue worker in a subprocess, its output in a log file shown when a test fails.

    Use it as a context manager: it is stopped, by its pid, when the block ends.
    """

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_until(self, ready: Callable[[], bool], deadline_s: float = 60.0) -> None:
        """Poll *ready* until it holds; else stop the worker and fail, showing its output."""
        deadline = time.monotonic() + deadline_s
        while not ready():
            exited = self.process is not None and self.process.poll() is not None
            if exited or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the worker {self.command} did not start:\n{self.output()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def start_saq_worker(
    server: RedisServer, log_dir: Path, settings: str = "tests.saq_worker.settings"
) -> Worker:
    """Start ``saq <settings>`` and wait until its start-up sweep has passed.

    SAQ's sweeper can catch a job between its dequeue and its start (tobymao/saq#277):
    jobs are enqueued only after the one sweep at start.
    """
    worker = Worker(python("-m", "saq", settings, "-v"), _urls(server), log_dir / "saq.log")
    worker.start()
    with redis.Redis.from_url(server.url) as client:
        worker.wait_until(lambda: bool(client.exists("saq:default:sweep")))
    return worker


def start_celery_worker(
    server: RedisServer, log_dir: Path, app: str = "tests.celery_worker"
) -> Worker:
    """Start ``celery -A <app> worker`` (prefork, two processes) and wait until it is ready."""
    worker = Worker(
        python("-m", "celery", "-A", app, "worker", "--loglevel=INFO", "--concurrency=2",
               "--without-heartbeat", "--without-gossip", "--without-mingle"),
        _urls(server),
        log_dir / "celery.log",
    )  # fmt: skip
    worker.start()
    worker.wait_until(lambda: " ready." in worker.output())
    return worker


def _urls(server: RedisServer) -> dict[str, str]:
    # The tests' workers read the first; the examples' read the others.
    return {
        "LIGHTWORK_TEST_REDIS_URL": server.url,
        "REDIS_URL": server.url,
        "BROKER_URL": server.url,
    }
