"""Prometheus metrics of real tasks, read through the text exposition that Prometheus scrapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from lightwork import Scheduler
from lightwork.prometheus import TaskCollector

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Render the registry as Prometheus's text format and parse it back, sample by sample."""
    text = generate_latest(registry).decode()
    samples: list[Sample] = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("lightwork_")
    ]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    async with Scheduler(slow_threshold=0.05) as running:
        yield running


async def pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def test_counts_gauges_and_histograms_per_task_name(scheduler: Scheduler) -> None:
    registry = CollectorRegistry()
    TaskCollector(scheduler, registry=registry)
    release = asyncio.Event()
    await scheduler.add_task(pause(0.08), name="report")
    await scheduler.add_task(pause(0), name="report")
    with pytest.raises(ValueError, match="boom"):
        await scheduler.add_task(fail(), name="email")
    waiting = scheduler.add_task(release.wait(), name="email")
    await asyncio.sleep(0)  # its first step: it is running now

    samples = scrape(registry)
    assert value(samples, "lightwork_tasks_scheduled_total", task="report") == 2
    assert value(samples, "lightwork_tasks_ended_total", task="report", state="completed") == 2
    assert value(samples, "lightwork_tasks_ended_total", task="email", state="failed") == 1
    assert value(samples, "lightwork_tasks_ended_total", task="email", state="timed_out") == 0
    assert value(samples, "lightwork_tasks_in_flight", task="email") == 1
    assert value(samples, "lightwork_tasks_queued", task="email") == 0
    assert value(samples, "lightwork_tasks_slow_total", task="report") == 1
    assert value(samples, "lightwork_tasks_blocking_total", task="report") == 0
    assert value(samples, "lightwork_task_duration_seconds_count", task="report") == 2
    assert value(samples, "lightwork_task_duration_seconds_sum", task="report") > 0.05
    assert value(samples, "lightwork_task_duration_seconds_bucket", task="report", le="0.05") == 1
    assert value(samples, "lightwork_task_duration_seconds_bucket", task="report", le="+Inf") == 2
    assert value(samples, "lightwork_task_blocked_seconds_count", task="email") == 1
    assert value(samples, "lightwork_task_blocked_seconds_bucket", task="email", le="+Inf") == 1

    release.set()
    await waiting
    samples = scrape(registry)
    assert value(samples, "lightwork_tasks_in_flight", task="email") == 0
    assert value(samples, "lightwork_tasks_ended_total", task="email", state="completed") == 1


async def test_buckets_are_cumulative_and_in_order(scheduler: Scheduler) -> None:
    registry = CollectorRegistry()
    TaskCollector(scheduler, registry=registry)
    for _ in range(3):
        await scheduler.add_task(pause(0), name="tick")
    [family] = [
        f
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        if f.name == "lightwork_task_duration_seconds"
    ]
    buckets = [s for s in family.samples if s.name.endswith("_bucket")]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds == sorted(bounds)
    assert bounds[-1] == float("inf")
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)
    assert counts[-1] == 3


async def test_several_schedulers_are_added_up_per_task_name() -> None:
    registry = CollectorRegistry()
    async with Scheduler() as first, Scheduler() as second:
        TaskCollector(first, second, registry=registry)
        await first.add_task(pause(0), name="sync")
        await second.add_task(pause(0), name="sync")
        await second.add_task(pause(0), name="other")
        samples = scrape(registry)
    assert value(samples, "lightwork_tasks_scheduled_total", task="sync") == 2
    assert value(samples, "lightwork_task_duration_seconds_count", task="sync") == 2
    assert value(samples, "lightwork_tasks_scheduled_total", task="other") == 1


def test_registering_names_the_metrics_without_reading_the_scheduler() -> None:
    registry = CollectorRegistry(auto_describe=True)
    collector = TaskCollector(Scheduler(), registry=registry)  # never started: no stats yet
    names = {family.name for family in collector.describe()}
    assert names == {
        "lightwork_tasks_scheduled",
        "lightwork_tasks_ended",
        "lightwork_tasks_queued",
        "lightwork_tasks_in_flight",
        "lightwork_tasks_slow",
        "lightwork_tasks_blocking",
        "lightwork_task_duration_seconds",
        "lightwork_task_blocked_seconds",
    }
    assert scrape(registry) == {}  # no task yet: families without samples
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        TaskCollector(Scheduler(), registry=registry)  # the same names twice in one registry


def test_a_collector_needs_a_scheduler() -> None:
    with pytest.raises(ValueError, match="at least one Scheduler"):
        TaskCollector(registry=None)
