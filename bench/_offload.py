"""Part 4, the parent side: one throwaway Redis, each engine measured in a fresh process.

The measurement itself is in ``_enqueue``: jobs per second enqueued with the engine's own
client, and through lightwork's offload bridge, in alternating rounds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._micro import run_worker
from ._redis import MISSING, redis_server, redis_server_binary

if TYPE_CHECKING:
    from collections.abc import Sequence

ENGINE_LABELS: Final = {"saq": "SAQ", "celery": "Celery"}


@dataclass(frozen=True, slots=True)
class OffloadResult:
    """Enqueue throughput of one engine: its own client, and through lightwork."""

    engine: str
    label: str
    own_jobs_per_s: float | None
    """Median over the rounds; ``None`` when skipped."""
    lightwork_jobs_per_s: float | None
    ratio: float | None
    """Median over the pairs of lightwork's round over the client's round just before it."""
    own_samples: list[float]
    lightwork_samples: list[float]
    concurrency: int
    skipped: str | None = None


def _skipped(engine: str, concurrency: int, reason: str) -> OffloadResult:
    return OffloadResult(
        engine, ENGINE_LABELS[engine], None, None, None, [], [], concurrency, reason
    )


def run_offload(
    engines: Sequence[str], *, n: int, concurrency: int, repeat: int
) -> list[OffloadResult]:
    """Measure every engine against one fresh redis-server; skip all if there is none."""
    if redis_server_binary() is None:
        print(f"  note: skipped: {MISSING}")
        return [_skipped(engine, concurrency, MISSING) for engine in engines]
    results: list[OffloadResult] = []
    with redis_server() as url:
        for engine in engines:
            print(f"  {ENGINE_LABELS[engine]:7}", end="", flush=True)
            spec = {
                "engine": engine, "url": url, "n": n, "concurrency": concurrency, "repeat": repeat,
            }  # fmt: skip
            answer = run_worker(spec, module="bench._enqueue")
            if "skipped" in answer:
                print(f" note: skipped: {answer['skipped']}")
                results.append(_skipped(engine, concurrency, answer["skipped"]))
                continue
            own, ours = answer["own_jobs_per_s"], answer["lightwork_jobs_per_s"]
            ratio = statistics.median(o / c for o, c in zip(ours, own, strict=True))
            results.append(
                OffloadResult(
                    engine,
                    ENGINE_LABELS[engine],
                    statistics.median(own),
                    statistics.median(ours),
                    ratio,
                    own,
                    ours,
                    concurrency,
                )
            )
            print(" done")
    return results
