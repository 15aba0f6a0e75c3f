"""The jobs: plain functions, imported by the app (to offload them) and by the worker (to run them).

They know nothing of Celery: the worker registers them as Celery tasks under their names,
and the app sends them by name, so the web process never imports the worker's Celery app.
"""

from __future__ import annotations

import os
import random
import statistics

import lightwork


@lightwork.offloadable("monthly-report")
def monthly_report(month: str, orders: int = 400_000) -> dict[str, object]:
    """Summarise a month of (made-up) orders: CPU-bound, so it belongs in a worker."""
    rng = random.Random(month)  # the same month gives the same report
    amounts = [round(rng.lognormvariate(3, 1), 2) for _ in range(orders)]
    return {
        "month": month,
        "orders": orders,
        "revenue": round(sum(amounts), 2),
        "median": statistics.median(amounts),
        "pid": os.getpid(),
    }
