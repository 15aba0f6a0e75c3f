"""A throwaway redis-server for part 4: started on a free port, stopped by its pid.

It keeps nothing on disk (``--save ''``, ``--appendonly no``), so a run leaves no trace and
never waits on a disk write. Starting is bounded by a deadline, and the server is stopped
(terminated, then killed if it lingers) whatever happens inside the block.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from ._http import HOST, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

START_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 10.0
MISSING: Final = "redis-server is not installed (apt-get install -y redis-server)"


def redis_server_binary() -> str | None:
    """Return the path of ``redis-server``, or ``None`` when this machine has none."""
    return shutil.which("redis-server")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[str]:
    """Run a fresh redis-server on 127.0.0.1 for the block; yield its URL.

    Raises:
        RuntimeError: redis-server is not installed, or did not answer in time.
    """
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError(MISSING)
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {port}")
            time.sleep(0.02)  # polling a port that is not open yet: there is no event to wait on
        yield f"redis://{HOST}:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
