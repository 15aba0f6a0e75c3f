"""Part 3: a real uvicorn server in one process, loaded by wrk (or ``_loadgen``) from another.

With two or more CPUs, the server is pinned to CPU 0 and the load generator to CPU 1, so
that they do not take turns on one core.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._server import VARIANTS

if TYPE_CHECKING:
    from collections.abc import Iterator

HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 20.0
STOP_TIMEOUT_S: Final = 15.0
PIN: Final = (os.cpu_count() or 1) >= 2
_UNITS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One load test: a path on one app variant."""

    key: str
    label: str
    variant: str
    path: str


ENDPOINTS: Final = (
    Endpoint("plain", "plain endpoint", "bare", "/plain"),
    Endpoint("starlette_task", "Starlette BackgroundTask (50 ms)", "bare", "/starlette-task"),
    Endpoint("create_task", "bare asyncio.create_task (50 ms)", "bare", "/create-task"),
    Endpoint("plain_middleware", "plain + BackgroundMiddleware", "lightwork", "/plain"),
    Endpoint("lightwork", "lightwork add_task (50 ms)", "lightwork", "/lightwork"),
    Endpoint(
        "lightwork_frozen", "lightwork add_task, gc.freeze()", "lightwork-frozen", "/lightwork"
    ),
)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """Throughput and latency of one endpoint, and the server's garbage-collector time."""

    endpoint: str
    label: str
    tool: str
    requests_per_s: float
    relative: float
    """Requests per second over the plain endpoint's (no middleware), in the same run."""
    p50_ms: float
    p99_ms: float
    errors: int
    gc_share: float
    """Share of the server's wall time spent in garbage collection during the run."""
    gc_max_pause_ms: float
    """The longest collection of a run (median over the rounds, as every figure here)."""
    full_collections: int
    cpu_us_per_request: float


def load_tool() -> str:
    """Name the load generator this machine has: ``wrk`` if installed, else ``python``."""
    return "wrk" if shutil.which("wrk") else "python"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _pin(pid: int, cpu: int) -> None:
    if PIN:
        os.sched_setaffinity(pid, {cpu})


@contextmanager
def serve(variant: str) -> Iterator[int]:
    """Run the bench app's *variant* under uvicorn on a free port; stop it on exit."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "bench._server", variant, str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _pin(server.pid, 0)
            _wait_until_listening(server, port, log)
            yield port
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_until_listening(server: subprocess.Popen[bytes], port: int, log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the bench server exited with {server.returncode}:\n{log.read()}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet: there is no event to wait on
        else:
            return
    raise RuntimeError(f"the bench server did not listen on port {port} within {START_TIMEOUT_S}s")


def _server_stats(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/stats", timeout=10) as response:
        stats: dict[str, float] = json.load(response)
        return stats


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, float]:
    """Read requests/s, the 50th and 99th latency percentiles and the errors from wrk's text."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)\b", output)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", output)
    if rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(non_2xx.group(1))
    if socket_errors := re.search(r"Socket errors:(.*)", output):
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return {
        "requests_per_s": float(rate.group(1)),
        "p50_ms": _ms(*p50.groups()),
        "p99_ms": _ms(*p99.groups()),
        "errors": float(errors),
    }


def _run_load(tool: str, port: int, path: str, connections: int, seconds: int) -> dict[str, float]:
    if tool == "wrk":
        pin = ["taskset", "-c", "1"] if PIN and shutil.which("taskset") else []
        command = [
            *pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
            f"http://{HOST}:{port}{path}",
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=True
        )
        return parse_wrk(done.stdout)
    generator = subprocess.Popen(
        [sys.executable, "-m", "bench._loadgen", HOST, str(port), path, str(connections),
         str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    _pin(generator.pid, 1)
    out, _ = generator.communicate(timeout=seconds + 30)
    if generator.returncode != 0:
        raise RuntimeError(f"the load generator failed with exit code {generator.returncode}")
    answer: dict[str, float] = json.loads(out)
    return answer


def run_http(*, connections: int, seconds: int, warm_up_s: int, rounds: int) -> list[HttpResult]:
    """Load every endpoint in turn, *rounds* times over; medians, ratios to the plain endpoint.

    Both app variants are served at once (an idle server costs nothing), so that each round
    visits every endpoint: a slowdown of a shared machine then hits all of them alike.
    """
    tool = load_tool()
    print(f"  load generator: {tool} ({connections} connections, {seconds} s per endpoint)")
    if tool == "python":
        print("  (install Debian's wrk, `apt-get install -y wrk`, for figures comparable to docs)")
    runs: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {}
    with ExitStack() as servers:
        ports = {variant: servers.enter_context(serve(variant)) for variant in VARIANTS}
        if warm_up_s:
            for endpoint in ENDPOINTS:
                _run_load(tool, ports[endpoint.variant], endpoint.path, connections, warm_up_s)
        for round_number in range(1, rounds + 1):
            print(f"  round {round_number}/{rounds}", end="", flush=True)
            for endpoint in ENDPOINTS:
                port = ports[endpoint.variant]
                _server_stats(port)  # resets the server's counters
                load = _run_load(tool, port, endpoint.path, connections, seconds)
                runs.setdefault(endpoint.key, []).append((load, _server_stats(port)))
                print(".", end="", flush=True)
            print()
    medians = {key: _medians(taken) for key, taken in runs.items()}
    plain = medians["plain"]["requests_per_s"]
    return [
        HttpResult(
            endpoint=endpoint.key,
            label=endpoint.label,
            tool=tool,
            requests_per_s=figures["requests_per_s"],
            relative=figures["requests_per_s"] / plain,
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            errors=int(sum(load["errors"] for load, _ in runs[endpoint.key])),
            gc_share=figures["gc_s"] / figures["wall_s"],
            gc_max_pause_ms=figures["gc_max_pause_ms"],
            full_collections=int(figures["full_collections"]),
            cpu_us_per_request=figures["cpu_s"] / (figures["requests_per_s"] * seconds) * 1e6,
        )
        for endpoint in ENDPOINTS
        for figures in (medians[endpoint.key],)
    ]


def _medians(runs: list[tuple[dict[str, float], dict[str, float]]]) -> dict[str, float]:
    """Each figure's median over the rounds (load and server figures in one mapping)."""
    keys = [*runs[0][0], *runs[0][1]]
    return {key: statistics.median({**load, **stats}[key] for load, stats in runs) for key in keys}
