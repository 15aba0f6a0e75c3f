"""Instructions per offloaded job, counted by callgrind: what the offload bridge costs.

Run ``python -m bench.offload_instructions`` (valgrind and redis-server needed; about five
minutes on two cores). Jobs are offloaded in-process through a ``Scheduler`` and its
``Offloader``, as part 4 offloads them (64 at a time, each wave awaited), and counted twice
under callgrind: with a warm-up only, and with N more jobs after it; the difference over N
is the figure.
Three contenders: the bridge on ``MemoryBackend`` (lightwork's own cost: the ``offload()``
call and its hand-off task, no engine), the bridge on SAQ, and SAQ's own client connected
as lightwork's backend connects it (socket timeouts), on a throwaway local Redis. The SAQ
ratio is the one part 4 times, without most of the noise: what a job costs the process, not
Redis. The SAQ counts still move by 1-2% from run to run (how Redis's replies fall into the
loop's reads), so compare them over several thousand jobs; the MemoryBackend one does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from lightwork import Offloader, Scheduler
from lightwork.backends import MemoryBackend

from ._contenders import BLOCK_THRESHOLD_S, CLOCK_STRETCH
from ._enqueue import ENGINES, _saq_backend, lightwork_round, own_round
from ._redis import redis_server
from ._runtime import configure_logging, run_on
from .instructions import instructions_per

WARM_UP_JOBS: Final = 1_000
CONCURRENCY: Final = 64
CONTENDERS: Final = {
    "memory": "offload() on MemoryBackend",
    "saq": "offload() on SAQ",
    "saq_own": "SAQ's own enqueue, connected alike",
}


async def _child(contender: str, url: str, n: int) -> None:
    if contender == "saq_own":
        async with ENGINES["saq"].configured(url) as enqueue:
            for size in (WARM_UP_JOBS, n):
                if size:
                    await own_round(enqueue, size, CONCURRENCY)
        return
    backend = MemoryBackend() if contender == "memory" else _saq_backend(url)
    # The watchdog's threshold stretched as callgrind slows the loop: at full speed, no
    # hand-off holds the loop for 20 ms, and reporting one would be counted as its cost.
    threshold = BLOCK_THRESHOLD_S * CLOCK_STRETCH
    offloader = Offloader(backend, outbox=None)
    async with Scheduler(offload=offloader, block_threshold=threshold) as scheduler:
        for size in (WARM_UP_JOBS, n):
            if size:
                await lightwork_round(scheduler, size, CONCURRENCY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="jobs counted (default 2,000)")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS))
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "URL", "N"))
    args = parser.parse_args()
    if args.child:
        contender, url, n = args.child
        configure_logging()  # INFO, as in production: no per-job debug event
        run_on("uvloop", _child(contender, url, int(n)))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    contenders = args.contenders or list(CONTENDERS)
    with redis_server() as url, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(
            zip(
                contenders,
                pool.map(
                    lambda c: instructions_per(
                        "bench.offload_instructions", [c, url], args.n, pure=False
                    ),
                    contenders,
                ),
                strict=True,
            )
        )
    print(f"instructions per job, callgrind, uvloop, {args.n:,} jobs, {CONCURRENCY} at a time")
    for contender in contenders:
        ratio = ""
        if contender == "saq" and "saq_own" in counts:
            ratio = f"  {counts['saq_own'] / counts['saq']:4.2f}x of SAQ's own"
        print(f"{CONTENDERS[contender]:<40}{counts[contender]:>9,.0f}{ratio}")


if __name__ == "__main__":
    main()
