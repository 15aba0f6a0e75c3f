"""Parts 1 and 2, the parent side: run each contender in a fresh worker process, collect figures."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._contenders import BY_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._runtime import LoopName

WORKER_TIMEOUT_S: Final = 600.0


@dataclass(frozen=True, slots=True)
class MicroResult:
    """Spawn-and-complete cost of one contender on one loop and workload."""

    contender: str
    label: str
    loop: str
    workload: str
    ns_per_task: float | None
    """Median over the repetitions; ``None`` when skipped."""
    samples: list[float]
    floor_samples: list[float]
    """The floor's figure in the round just before each of ``samples``, in the same process."""
    ratio: float | None
    """Median over the rounds of the round's figure over its paired floor round."""
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """Bytes per parked task of one contender on one loop."""

    contender: str
    label: str
    loop: str
    bytes_per_task: float | None
    """Growth of the memory tracemalloc traces, per task."""
    rss_bytes_per_task: float | None
    """Growth of the resident set, per task: a cross-check, coarse by pages and arenas."""
    tracked_per_task: float | None = None
    """Objects more that the garbage collector tracks, per task (``gc.get_objects()``)."""
    skipped: str | None = None


def run_worker(spec: dict[str, Any], module: str = "bench._worker") -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (``python -m module SPEC``); return its answer."""
    done = subprocess.run(
        [sys.executable, "-m", module, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"bench worker {spec} failed with exit code {done.returncode}:\n{done.stderr[-3000:]}"
        )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def run_micro(
    loops: Sequence[LoopName],
    workloads: Sequence[str],
    contenders: Sequence[str],
    *,
    n: int,
    wave: int,
    repeat: int,
    rounds: int,
) -> list[MicroResult]:
    """Measure every contender on every loop and workload, each against the floor.

    Every contender runs in a fresh process (a warm-up, then *repeat* timed rounds of *n*
    tasks, each just after a round of the floor); *rounds* passes over all contenders
    spread a slow spell of a shared machine over all of them.
    """
    samples: dict[tuple[str, str, str], list[float]] = {}
    floors: dict[tuple[str, str, str], list[float]] = {}
    skipped: dict[tuple[str, str, str], str] = {}
    for round_number in range(1, rounds + 1):
        for loop in loops:
            for workload in workloads:
                print(f"  round {round_number}/{rounds}  {loop:8} {workload:7}", end="", flush=True)
                for key in contenders:
                    spec = {
                        "part": "micro", "contender": key, "loop": loop, "workload": workload,
                        "n": n, "wave": wave, "repeat": repeat,
                    }  # fmt: skip
                    answer = run_worker(spec)
                    cell = (key, loop, workload)
                    if "skipped" in answer:
                        skipped[cell] = answer["skipped"]
                    else:
                        samples.setdefault(cell, []).extend(answer["ns_per_task"])
                        floors.setdefault(cell, []).extend(answer["floor_ns_per_task"])
                    print(".", end="", flush=True)
                print()
    for reason in sorted(set(skipped.values())):
        print(f"  note: {reason}")
    results: list[MicroResult] = []
    for loop in loops:
        for workload in workloads:
            for key in contenders:
                cell, label = (key, loop, workload), BY_KEY[key].label
                if cell in skipped:
                    results.append(
                        MicroResult(key, label, loop, workload, None, [], [], None, skipped[cell])
                    )
                    continue
                taken, floor = samples[cell], floors[cell]
                ratio = statistics.median(c / f for c, f in zip(taken, floor, strict=True))
                results.append(
                    MicroResult(
                        key, label, loop, workload, statistics.median(taken), taken, floor, ratio
                    )
                )
    return results


def run_memory(
    loops: Sequence[LoopName], contenders: Sequence[str], *, n: int
) -> list[MemoryResult]:
    """Measure bytes per parked task for every contender on every loop."""
    results: list[MemoryResult] = []
    for loop in loops:
        print(f"  {loop:8}", end="", flush=True)
        for key in contenders:
            label = BY_KEY[key].label
            answer = run_worker({"part": "memory", "contender": key, "loop": loop, "n": n})
            if "skipped" in answer:
                skipped = answer["skipped"]
                results.append(MemoryResult(key, label, loop, None, None, skipped=skipped))
            else:
                traced, rss = answer["bytes_per_task"], answer.get("rss_bytes_per_task")
                tracked = answer.get("tracked_per_task")
                results.append(MemoryResult(key, label, loop, traced, rss, tracked))
            print(".", end="", flush=True)
        print()
    return results
