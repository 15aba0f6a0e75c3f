"""A bounded HTTP/1.1 load generator, for machines without wrk: ``python -m bench._loadgen``.

Arguments: HOST PORT PATH CONNECTIONS SECONDS. Each connection keeps one request in flight
on a keep-alive connection, as wrk does, until the time is up; prints one JSON object with
the request count, the errors and the latency percentiles. One Python process on uvloop
saturates well below wrk, so its req/s are a floor on what the server can do: compare
ratios between endpoints, not figures with wrk's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import cast

import uvloop


class _Connection(asyncio.Protocol):
    """Sends one request, waits for its whole response, records the latency, repeats."""

    def __init__(self, request: bytes, deadline: float, latencies: list[float]) -> None:
        self.request = request
        self.deadline = deadline
        self.latencies = latencies
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.errors = 0
        self._buffer = b""
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, though they behave as one.
        self._transport = cast("asyncio.Transport", transport)
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter()
        self._transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self._buffer[:head_end].lower()
        length_at = head.find(b"content-length:")
        if length_at < 0:
            self.errors += 1
            self._close()
            return
        length = int(head[length_at + 15 :].split(b"\r\n", 1)[0])
        end = head_end + 4 + length
        if len(self._buffer) < end:
            return
        now = time.perf_counter()
        if not head.startswith(b"http/1.1 2"):
            self.errors += 1
        self.latencies.append(now - self._sent_at)
        self._buffer = self._buffer[end:]
        if now < self.deadline:
            self._send()
        else:
            self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def load(
    host: str, port: int, path: str, connections: int, seconds: float
) -> dict[str, float]:
    """Keep *connections* requests in flight for *seconds*; return throughput and latency."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    started = time.perf_counter()
    protocols = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(
            lambda: _Connection(request, started + seconds, latencies), host, port
        )
        protocols.append(protocol)
    await asyncio.wait_for(asyncio.gather(*(p.closed for p in protocols)), seconds + 10)
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": float(len(latencies)),
        "errors": float(sum(p.errors for p in protocols)),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


def main() -> None:
    host, port, path, connections, seconds = sys.argv[1:6]
    answer = uvloop.run(load(host, int(port), path, int(connections), float(seconds)))
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
