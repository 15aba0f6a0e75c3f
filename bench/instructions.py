"""Instructions per task, counted by callgrind: the spawn-and-complete cost without the noise.

Run ``python -m bench.instructions`` (valgrind needed: ``apt-get install -y valgrind``; about
five minutes on two cores). Wall-clock figures on a shared machine drift by 10-30% from run
to run, and a slower machine changes every ratio a little; callgrind counts the instructions
the CPU executes, the same for the same code and inputs whatever else the machine does, which
makes it the figure to compare two versions of lightwork with. Each contender runs twice under
callgrind, on uvloop: with a warm-up round only, and with N more tasks after it; the
difference over N is its instructions per task. Each lightwork contender runs on the
compiled core (when the install built it) and again on the pure-Python one
(``LIGHTWORK_NO_EXTENSIONS=1``). Not part of ``python -m bench`` or of CI:
valgrind runs Python about fifty times slower. Instructions are not time (a C instruction
and a Python one differ in cost), so the ratios here read higher than the timed ones.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final

import lightwork

from ._contenders import BY_KEY, waves
from ._runtime import configure_logging, run_on
from ._worker import WORKLOADS, _nothing

if TYPE_CHECKING:
    from collections.abc import Sequence

WARM_UP_TASKS: Final = 2_000
WAVE: Final = 20
"""Tasks spawned per loop iteration: few, because callgrind runs Python about fifty times
slower and lightwork's deadlines are in wall-clock time. A wave of 1,000, as in the timed
part, would keep a waiting task from its next step for longer than the 100 ms slow-task
threshold, and measure the warnings instead of the tasks."""
DEFAULT_CONTENDERS: Final = (
    "floor",
    "aiojobs",
    "lightwork",
    "lightwork_options",
    "lightwork_block",
    "lightwork_steps",
)
CLOCK_STRETCH: Final = 50
"""How much slower Python runs under callgrind: lightwork's watchdog is set as much slower
(see ``bench._contenders.CLOCK_STRETCH``)."""
_TOTALS: Final = re.compile(r"^totals: (\d+)", re.MULTILINE)


async def _spawn(contender: str, workload: str, n: int) -> None:
    fn = WORKLOADS[workload]
    async with BY_KEY[contender].open() as round_:
        await round_(waves(WARM_UP_TASKS, WAVE), fn, _nothing)
        if n:
            await round_(waves(n, WAVE), fn, _nothing)


def instructions_per(module: str, child: Sequence[str], n: int, *, pure: bool) -> float:
    """Return the instructions per unit (task, request) of ``python -m <module> --child``.

    The child runs twice, with *child* and ``0``, then with *child* and *n* as its last
    arguments: a warm-up only, and N more units after it; the difference over N is the figure.
    """
    with_n = _count_instructions(module, [*child, str(n)], pure=pure)
    return (with_n - _count_instructions(module, [*child, "0"], pure=pure)) / n


def _count_instructions(module: str, child: Sequence[str], *, pure: bool) -> int:
    """Run ``python -m <module> --child <child...>`` under callgrind; return its instructions.

    Only the thread that runs the event loop: the watchdog's thread costs time per second,
    not per task (``python -m bench.watchdog`` measures it).
    """
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind", "--tool=callgrind", "--separate-threads=yes",
            f"--callgrind-out-file={out}/callgrind.out",
            sys.executable, "-m", module, "--child", *child,
        ]  # fmt: skip
        # A fixed hash seed: string hashes decide dict and set layouts, and so the count.
        environment = {
            **os.environ,
            "BENCH_CLOCK_STRETCH": str(CLOCK_STRETCH),
            "PYTHONHASHSEED": "0",
        }
        environment.pop("LIGHTWORK_NO_EXTENSIONS", None)
        if pure:
            environment["LIGHTWORK_NO_EXTENSIONS"] = "1"
        subprocess.run(command, capture_output=True, check=True, timeout=1800, env=environment)
        found = _TOTALS.search(Path(out, "callgrind.out-01").read_text())
    if found is None:
        raise RuntimeError(f"callgrind reported no count for {module} {' '.join(child)}")
    return int(found.group(1))


def _per_task(contender: str, workload: str, n: int, pure: bool) -> float:
    return instructions_per("bench.instructions", [contender, workload], n, pure=pure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="tasks counted (default 10,000)")
    parser.add_argument("--contenders", nargs="+", choices=sorted(BY_KEY))
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS))
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "WORKLOAD", "N"))
    args = parser.parse_args()
    configure_logging()
    if args.child:
        contender, workload, n = args.child
        run_on("uvloop", _spawn(contender, workload, int(n)))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    contenders = list(dict.fromkeys(["floor", *(args.contenders or DEFAULT_CONTENDERS)]))
    workloads = args.workloads or list(WORKLOADS)
    cores = [False, True] if lightwork.compiled else [True]  # pure: without compiled code
    rows = [
        (c, pure) for c in contenders for pure in (cores if BY_KEY[c].is_lightwork else [False])
    ]
    cells = [(c, w, pure) for c, pure in rows for w in workloads]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(
            zip(
                cells,
                pool.map(lambda cell: _per_task(cell[0], cell[1], args.n, cell[2]), cells),
                strict=True,
            )
        )
    shown = " / ".join(workloads)
    print(f"instructions per task on uvloop, callgrind, {args.n:,} tasks, {WAVE} a wave ({shown})")
    for contender, pure in rows:
        row = "  ".join(
            f"{counts[contender, w, pure]:>9,.0f} "
            f"{counts[contender, w, pure] / counts['floor', w, False]:5.2f}x"
            for w in workloads
        )
        core = (
            (" (pure Python)" if pure else " (compiled)") if BY_KEY[contender].is_lightwork else ""
        )
        print(f"{BY_KEY[contender].label + core:<52}{row}")


if __name__ == "__main__":
    main()
