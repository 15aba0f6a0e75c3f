"""Run the benchmarks: ``python -m bench [micro] [memory] [http] [offload] [--quick]``.

Prints tables of ratios measured in this run, writes them to ``bench/results/results.json``
and draws ``bench/results/chart.png``. ``--quick`` runs every part at a small size, only to
prove that it still runs: its figures mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from . import _report
from ._contenders import CONTENDERS
from ._http import run_http
from ._machine import describe
from ._micro import run_memory, run_micro
from ._offload import ENGINE_LABELS, run_offload
from ._runtime import LOOPS
from ._targets import check
from ._worker import WORKLOADS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._http import HttpResult
    from ._micro import MemoryResult, MicroResult
    from ._offload import OffloadResult

PARTS: Final = ("micro", "memory", "http", "offload")
RESULTS: Final = Path(__file__).parent / "results"


def _part(name: str) -> str:
    # Checked here, not with ``choices``: argparse checks an empty ``nargs="*"`` against them.
    if name not in PARTS:
        raise argparse.ArgumentTypeError(f"{name!r} is not a part: choose from {', '.join(PARTS)}")
    return name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "parts",
        nargs="*",
        type=_part,
        metavar="PART",
        help="micro, memory, http, offload (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run for CI")
    parser.add_argument("--n", type=int, help="tasks per timed round (default 100,000)")
    parser.add_argument(
        "--wave", type=int, default=1000, help="tasks spawned per loop iteration (default 1,000)"
    )
    parser.add_argument("--repeat", type=int, help="timed rounds per process (default 5)")
    parser.add_argument("--rounds", type=int, help="passes over all contenders (default 1)")
    parser.add_argument("--memory-n", type=int, help="parked tasks (default 100,000)")
    parser.add_argument("--seconds", type=int, help="seconds per HTTP load run (default 5)")
    parser.add_argument("--http-rounds", type=int, help="passes over all endpoints (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections (64)")
    parser.add_argument("--offload-n", type=int, help="jobs per offload round (default 10,000)")
    parser.add_argument(
        "--offload-concurrency", type=int, default=64, help="jobs enqueued at once (64)"
    )
    parser.add_argument(
        "--engines", nargs="+", choices=list(ENGINE_LABELS), default=list(ENGINE_LABELS)
    )
    parser.add_argument("--loops", nargs="+", choices=list(LOOPS), default=list(LOOPS))
    parser.add_argument(
        "--contenders", nargs="+", choices=[c.key for c in CONTENDERS], default=None
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where results go")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {
        "quick": quick,
        "n": args.n or (2_000 if quick else 100_000),
        "wave": args.wave,
        "repeat": args.repeat or (1 if quick else 5),
        "rounds": args.rounds or 1,
        "memory_n": args.memory_n or (2_000 if quick else 100_000),
        "seconds": args.seconds or (1 if quick else 5),
        "http_rounds": args.http_rounds or (1 if quick else 3),
        "warm_up_s": 0 if quick else 1,
        "connections": args.connections,
        "offload_n": args.offload_n or (300 if quick else 10_000),
        "offload_concurrency": args.offload_concurrency,
        "engines": args.engines,
        "loops": args.loops,
        "contenders": args.contenders or [c.key for c in CONTENDERS],
        "parts": args.parts or list(PARTS),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    machine = describe()
    print(f"lightwork benchmarks on {machine['cpu']} x{machine['cpus']}, {machine['python']}")
    print(f"lightwork from {machine['lightwork_source']}")
    started = time.monotonic()
    micro: list[MicroResult] = []
    memory: list[MemoryResult] = []
    http: list[HttpResult] = []
    offload: list[OffloadResult] = []
    if "micro" in settings["parts"]:
        print(
            f"\n1. spawn and complete: {settings['n']:,} tasks per round, "
            f"{settings['wave']:,} per loop iteration"
        )
        micro = run_micro(
            settings["loops"],
            list(WORKLOADS),
            settings["contenders"],
            n=settings["n"],
            wave=settings["wave"],
            repeat=settings["repeat"],
            rounds=settings["rounds"],
        )
        print(_report.micro_table(micro).text())
    if "memory" in settings["parts"]:
        print(f"\n2. memory: {settings['memory_n']:,} tasks parked on one future")
        memory = run_memory(settings["loops"], settings["contenders"], n=settings["memory_n"])
        print(_report.memory_table(memory).text())
    if "http" in settings["parts"]:
        print("\n3. HTTP: uvicorn (uvloop + httptools, 1 worker) on 127.0.0.1")
        http = run_http(
            connections=settings["connections"],
            seconds=settings["seconds"],
            warm_up_s=settings["warm_up_s"],
            rounds=settings["http_rounds"],
        )
        print(_report.http_table(http).text())
    if "offload" in settings["parts"]:
        print(
            f"\n4. offload: {settings['offload_n']:,} jobs per round to a local Redis, "
            f"{settings['offload_concurrency']} at a time"
        )
        offload = run_offload(
            settings["engines"],
            n=settings["offload_n"],
            concurrency=settings["offload_concurrency"],
            repeat=settings["repeat"],
        )
        print(_report.offload_table(offload).text())
    verdicts = check(micro, memory, http, offload)
    quick_note = " (a --quick run: sizes too small for these verdicts to mean anything)"
    print(f"\ntargets (issue 15){quick_note if settings['quick'] else ''}")
    print(_report.targets_table(verdicts).text())

    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine,
        "settings": settings,
        "seconds": round(time.monotonic() - started, 1),
        "micro": [dataclasses.asdict(r) for r in micro],
        "memory": [dataclasses.asdict(r) for r in memory],
        "http": [dataclasses.asdict(r) for r in http],
        "offload": [dataclasses.asdict(r) for r in offload],
        "targets": [dataclasses.asdict(v) for v in verdicts],
    }
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "results.md").write_text(_report.markdown(micro, memory, http, offload, verdicts))
    title = f"lightwork benchmarks: {machine['cpu']} x{machine['cpus']}, {machine['python']}" + (
        " (quick: sizes too small to mean anything)" if settings["quick"] else ""
    )
    _report.chart(output / "chart.png", title, micro, memory, http, offload)
    print(f"\nwrote results.json, results.md and chart.png to {output} in {results['seconds']} s")


if __name__ == "__main__":
    main()
