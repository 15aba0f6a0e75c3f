"""The jobs: plain functions, imported by the app (to offload them) and by the worker (to run them).

Keep this module light: import heavy libraries inside the functions, so that the web
process does not load what only the worker needs.
"""

from __future__ import annotations

import math
import os

import lightwork


@lightwork.offloadable("count-primes")
def count_primes(below: int) -> dict[str, int]:
    """Count the primes below *below* the slow way: CPU-bound, so it belongs in a worker."""
    primes = sum(1 for n in range(2, below) if all(n % d for d in range(2, math.isqrt(n) + 1)))
    return {"below": below, "primes": primes, "pid": os.getpid()}
