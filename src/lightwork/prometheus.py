"""Prometheus metrics of background tasks, per task name, read from the schedulers at scrape time.

Install with ``pip install 'lightwork[prometheus]'``. The collector keeps nothing of its
own and costs nothing per task: each scrape reads ``Scheduler.stats()``.

Example:
    ```python
    from prometheus_client import make_asgi_app

    from lightwork.prometheus import TaskCollector

    scheduler = lightwork.Scheduler()
    TaskCollector(scheduler)  # registers itself in prometheus_client's default registry
    app = Starlette(
        routes=[Mount("/metrics", make_asgi_app())],
        middleware=[Middleware(BackgroundMiddleware, scheduler=scheduler)],
    )
    ```

Metrics, each with a ``task`` label (the task's name):

- ``lightwork_tasks_scheduled_total``: tasks accepted by ``add_task``.
- ``lightwork_tasks_ended_total``: tasks ended, with a ``state`` label: ``completed``,
  ``failed``, ``timed_out``, ``cancelled``, ``dropped`` or ``offloaded``.
- ``lightwork_tasks_queued``: tasks accepted and not started yet (held until their response,
  or waiting in the queue).
- ``lightwork_tasks_in_flight``: tasks running now.
- ``lightwork_tasks_slow_total``, ``lightwork_tasks_blocking_total``: tasks that logged
  ``background_task_slow`` and ``background_task_blocking``.
- ``lightwork_task_duration_seconds``: histogram of wall time, start to end.
- ``lightwork_task_blocked_seconds``: histogram of the time a task held the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core._exceptions import MissingDependencyError
from ._core._handle import TERMINAL_STATES

try:
    from prometheus_client.core import (
        REGISTRY,
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("lightwork.prometheus", "prometheus") from exc

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from ._offload._scheduler import Scheduler

__all__ = ["TaskCollector"]


class TaskCollector:
    """Expose the tasks of one or more schedulers as Prometheus metrics.

    With several schedulers (say, one per mounted sub-app), each task name's counts are
    added up across them.

    Args:
        *schedulers: the schedulers to read at every scrape.
        registry: where to register; ``None`` to register it yourself.

    Raises:
        ValueError: no scheduler was given.
    """

    def __init__(
        self, *schedulers: Scheduler, registry: CollectorRegistry | None = REGISTRY
    ) -> None:
        if not schedulers:
            raise ValueError("TaskCollector needs at least one Scheduler to read")
        self.schedulers = schedulers
        if registry is not None:
            registry.register(self)

    def __repr__(self) -> str:
        return f"<TaskCollector schedulers={len(self.schedulers)}>"

    def describe(self) -> list[Metric]:
        """Name the metrics without reading the schedulers (the registry calls this once)."""
        return _families({}, {})

    def collect(self) -> list[Metric]:
        """Read every scheduler's stats and return them as metric families (called per scrape)."""
        tasks: dict[str, dict[str, Any]] = {}
        bounds: dict[str, list[float]] = {}
        for scheduler in self.schedulers:
            stats = scheduler.stats()
            bounds = stats["buckets"]  # the same for every scheduler
            for name, counts in stats["tasks"].items():
                if name in tasks:
                    _add(tasks[name], counts)
                else:  # a fresh dict of this scrape's own: summed into in place
                    tasks[name] = counts
        return _families(tasks, bounds)


def _add(into: dict[str, Any], counts: dict[str, Any]) -> None:
    """Add another scheduler's counts of a task name to those of the earlier ones."""
    for key, value in counts.items():
        if isinstance(value, dict):  # a histogram
            summed = into[key]
            summed["counts"] = [
                a + b for a, b in zip(summed["counts"], value["counts"], strict=True)
            ]
            summed["sum"] += value["sum"]
        else:
            into[key] += value


def _families(tasks: dict[str, dict[str, Any]], bounds: dict[str, list[float]]) -> list[Metric]:
    task = ["task"]
    scheduled = CounterMetricFamily(
        "lightwork_tasks_scheduled", "Tasks accepted by add_task.", labels=task
    )
    ended = CounterMetricFamily(
        "lightwork_tasks_ended", "Tasks ended, by terminal state.", labels=[*task, "state"]
    )
    queued = GaugeMetricFamily(
        "lightwork_tasks_queued", "Tasks accepted and not started yet.", labels=task
    )
    in_flight = GaugeMetricFamily("lightwork_tasks_in_flight", "Tasks running now.", labels=task)
    slow = CounterMetricFamily(
        "lightwork_tasks_slow", "Tasks that ran past their slow threshold.", labels=task
    )
    blocking = CounterMetricFamily(
        "lightwork_tasks_blocking",
        "Tasks that held the event loop past their block threshold in one step.",
        labels=task,
    )
    duration = HistogramMetricFamily(
        "lightwork_task_duration_seconds", "Wall time of tasks, from start to end.", labels=task
    )
    blocked = HistogramMetricFamily(
        "lightwork_task_blocked_seconds",
        "Time tasks held the event loop, summed over their steps.",
        labels=task,
    )
    les = {key: [*map(floatToGoString, values), "+Inf"] for key, values in bounds.items()}
    for name, counts in tasks.items():
        scheduled.add_metric([name], counts["scheduled"])
        for state in TERMINAL_STATES:
            ended.add_metric([name, state.value], counts[state.value])
        queued.add_metric([name], counts["queued"])
        in_flight.add_metric([name], counts["in_flight"])
        slow.add_metric([name], counts["slow"])
        blocking.add_metric([name], counts["blocking"])
        for histogram, key in ((duration, "duration_s"), (blocked, "blocked_s")):
            buckets = list(zip(les[key], counts[key]["counts"], strict=True))
            histogram.add_metric([name], buckets, counts[key]["sum"])
    return [scheduled, ended, queued, in_flight, slow, blocking, duration, blocked]
