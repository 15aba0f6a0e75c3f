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
    """The engine's client connected as lightwork connects it (socket timeouts): median over
    the rounds; ``None`` when skipped."""
    own_defaults_jobs_per_s: float | None
    """The engine's client with the engine's defaults (no socket timeouts)."""
    lightwork_jobs_per_s: float | None
    ratio: float | None
    """Median over the rounds of lightwork's rate over the client's with the same settings."""
    ratio_defaults: float | None
    """The same, over the client with the engine's defaults."""
    samples: dict[str, list[float]]
    concurrency: int
    skipped: str | None = None


def _skipped(engine: str, concurrency: int, reason: str) -> OffloadResult:
    return OffloadResult(
        engine, ENGINE_LABELS[engine], None, None, None, None, None, {}, concurrency, reason
    )


def _median_ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(o / t for o, t in zip(ours, theirs, strict=True))


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
            own, defaults = answer["own_jobs_per_s"], answer["own_defaults_jobs_per_s"]
            ours = answer["lightwork_jobs_per_s"]
            results.append(
                OffloadResult(
                    engine,
                    ENGINE_LABELS[engine],
                    statistics.median(own),
                    statistics.median(defaults),
                    statistics.median(ours),
                    _median_ratio(ours, own),
                    _median_ratio(ours, defaults),
                    answer,
                    concurrency,
                )
            )
            print(" done")
    return results
