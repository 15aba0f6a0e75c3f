"""The figures of one run, as text tables and as one PNG chart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import matplotlib as mpl

mpl.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt

from ._targets import BYTES_TARGET

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from matplotlib.axes import Axes

    from ._http import HttpResult
    from ._micro import MemoryResult, MicroResult
    from ._offload import OffloadResult
    from ._targets import Verdict

RATIO_TARGET: Final = 1.3
OFFLOAD_TARGET: Final = 0.9


@dataclass(frozen=True, slots=True)
class Table:
    """Rows under a header, to print as text or to paste into the docs as Markdown."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    figures: bool = True
    """Align every column but the first to the right."""

    def text(self) -> str:
        widths = [
            max(len(row[i]) for row in [self.header, *self.rows]) for i in range(len(self.header))
        ]
        lines = [self.header, ["-" * w for w in widths], *self.rows]
        return "\n".join(
            "  ".join(
                cell.rjust(width) if self.figures and i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
            for line in lines
        )

    def markdown(self) -> str:
        rule = ["---", *(("---:" if self.figures else "---") for _ in self.header[1:])]
        return "\n".join(f"| {' | '.join(line)} |" for line in [self.header, rule, *self.rows])


def _columns(micro: Sequence[MicroResult]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.loop, r.workload) for r in micro))


def micro_table(micro: Sequence[MicroResult]) -> Table:
    """Contenders down, loop and workload across: ns per task and the ratio to the floor."""
    columns = _columns(micro)
    cells = {(r.contender, r.loop, r.workload): r for r in micro}
    rows = []
    for contender, label in dict.fromkeys((r.contender, r.label) for r in micro):
        row = [label]
        for loop, workload in columns:
            result = cells.get((contender, loop, workload))
            if result is None or result.ns_per_task is None or result.ratio is None:
                row.append("skipped")
            else:
                row.append(f"{result.ns_per_task:,.0f} ns {result.ratio:5.2f}x")
        rows.append(row)
    return Table(["contender", *(f"{loop} {workload}" for loop, workload in columns)], rows)


def memory_table(memory: Sequence[MemoryResult]) -> Table:
    """Contenders down, loops across: bytes per parked task, traced and by RSS; tracked objects."""
    loops = list(dict.fromkeys(r.loop for r in memory))
    cells = {(r.contender, r.loop): r for r in memory}
    rows = []
    for contender, label in dict.fromkeys((r.contender, r.label) for r in memory):
        row = [label]
        for loop in loops:
            result = cells.get((contender, loop))
            if result is None or result.bytes_per_task is None:
                row.extend(["skipped", "", ""])
                continue
            rss, tracked = result.rss_bytes_per_task, result.tracked_per_task
            row.extend(
                [
                    f"{result.bytes_per_task:,.0f}",
                    "n/a" if rss is None else f"{rss:,.0f}",
                    "n/a" if tracked is None else f"{tracked:.1f}",
                ]
            )
        rows.append(row)
    header = ["contender"]
    for loop in loops:
        header.extend([f"{loop} B/task", f"{loop} RSS B/task", f"{loop} GC objects/task"])
    return Table(header, rows)


def http_table(http: Sequence[HttpResult]) -> Table:
    """Endpoints down: throughput, its ratio to the plain endpoint, latency, collector time."""
    rows = [
        [
            r.label,
            f"{r.requests_per_s:,.0f}",
            f"{r.relative:.2f}x",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.gc_share:.0%}",
            f"{r.gc_max_pause_ms:.1f}",
            f"{r.cpu_us_per_request:.0f}",
            str(r.errors),
        ]
        for r in http
    ]
    header = [
        "endpoint", "req/s", "vs plain", "p50 ms", "p99 ms", "GC share", "max GC ms",
        "CPU us/req", "errors",
    ]  # fmt: skip
    return Table(header, rows)


def offload_table(offload: Sequence[OffloadResult]) -> Table:
    """Engines down: jobs per second with the engine's own client, through lightwork, ratios."""
    rows = [
        [r.label, "skipped", "", "", "", "", str(r.concurrency)]
        if r.own_jobs_per_s is None
        or r.own_defaults_jobs_per_s is None
        or r.lightwork_jobs_per_s is None
        or r.ratio is None
        or r.ratio_defaults is None
        else [
            r.label,
            f"{r.own_defaults_jobs_per_s:,.0f}",
            f"{r.own_jobs_per_s:,.0f}",
            f"{r.lightwork_jobs_per_s:,.0f}",
            f"{r.ratio:.2f}x",
            f"{r.ratio_defaults:.2f}x",
            str(r.concurrency),
        ]
        for r in offload
    ]
    header = [
        "engine",
        "own client, defaults",
        "own client, lightwork's settings",
        "through lightwork",
        "ratio, same settings",
        "ratio, defaults",
        "at once",
    ]
    return Table(header, rows)


def targets_table(verdicts: Sequence[Verdict]) -> Table:
    """One line per target of issue 15: met, missed or not measured, and the figure."""
    return Table(
        ["status", "target", "measured"],
        [[v.status.upper(), v.target, v.measured] for v in verdicts],
        figures=False,
    )


def markdown(
    micro: Sequence[MicroResult],
    memory: Sequence[MemoryResult],
    http: Sequence[HttpResult],
    offload: Sequence[OffloadResult],
    verdicts: Sequence[Verdict],
) -> str:
    """Every table of the run in Markdown, ready to paste into docs/benchmarks.md."""
    parts = [
        table.markdown() + "\n"
        for ran, table in (
            (micro, micro_table(micro)),
            (memory, memory_table(memory)),
            (http, http_table(http)),
            (offload, offload_table(offload)),
        )
        if ran
    ]
    return "\n".join([*parts, targets_table(verdicts).markdown() + "\n"])


def chart(
    path: Path,
    title: str,
    micro: Sequence[MicroResult],
    memory: Sequence[MemoryResult],
    http: Sequence[HttpResult],
    offload: Sequence[OffloadResult],
) -> None:
    """Draw one panel per part that ran, two to a row, and save them as a PNG."""
    measured = [r for r in offload if r.ratio is not None]
    panels: list[Callable[[Axes], None]] = [
        draw
        for ran, draw in (
            (micro, lambda axis: _micro_panel(axis, micro)),
            (memory, lambda axis: _memory_panel(axis, memory)),
            (http, lambda axis: _http_panel(axis, http)),
            (measured, lambda axis: _offload_panel(axis, measured)),
        )
        if ran
    ]
    columns = 2 if len(panels) > 1 else 1
    rows = max((len(panels) + 1) // 2, 1)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 6 * rows), squeeze=False)
    axes_list = [axis for row in axes for axis in row]
    for draw, axis in zip(panels, axes_list, strict=False):
        draw(axis)
    for unused in axes_list[len(panels) :]:
        unused.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(
    axis: Axes, labels: list[str], series: dict[str, list[float]], target: float | None
) -> None:
    height = 0.8 / max(len(series), 1)
    for offset, (name, values) in enumerate(series.items()):
        positions = [i + offset * height for i in range(len(labels))]
        axis.barh(positions, values, height=height, label=name)
    axis.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))], labels)
    axis.invert_yaxis()
    if target is not None:
        axis.axvline(target, color="red", linestyle="--", linewidth=1, label="target")
    axis.legend(fontsize=8)


def _micro_panel(axis: Axes, micro: Sequence[MicroResult]) -> None:
    measured = [r for r in micro if r.ratio is not None and r.contender != "floor"]
    labels = list(dict.fromkeys(r.label for r in measured))
    series: dict[str, list[float]] = {}
    for loop, workload in _columns(measured):
        ratios = {r.label: r.ratio for r in measured if (r.loop, r.workload) == (loop, workload)}
        series[f"{loop} {workload}"] = [ratios.get(label) or 0.0 for label in labels]
    _bars(axis, labels, series, RATIO_TARGET)
    axis.axvline(1.0, color="grey", linewidth=1)
    axis.set_xlabel("time per task, relative to create_task + set (1.0)")
    axis.set_title("1. spawn and complete")


def _memory_panel(axis: Axes, memory: Sequence[MemoryResult]) -> None:
    measured = [r for r in memory if r.bytes_per_task is not None]
    labels = list(dict.fromkeys(r.label for r in measured))
    series: dict[str, list[float]] = {}
    for loop in dict.fromkeys(r.loop for r in measured):
        figures = {r.label: r.bytes_per_task for r in measured if r.loop == loop}
        series[loop] = [figures.get(label) or 0.0 for label in labels]
    _bars(axis, labels, series, BYTES_TARGET)
    axis.set_xlabel("bytes per pending task (tracemalloc)")
    axis.set_title("2. memory")


def _http_panel(axis: Axes, http: Sequence[HttpResult]) -> None:
    labels = [f"{r.label}\np99 {r.p99_ms:.1f} ms" for r in http]
    _bars(axis, labels, {"req/s vs plain endpoint": [r.relative for r in http]}, None)
    axis.axvline(1.0, color="grey", linewidth=1)
    axis.set_xlabel(f"requests per second, relative to the plain endpoint ({http[0].tool})")
    axis.set_title("3. HTTP under uvicorn (uvloop + httptools)")


def _offload_panel(axis: Axes, offload: Sequence[OffloadResult]) -> None:
    labels = [
        f"{r.label}\n{r.lightwork_jobs_per_s or 0:,.0f} vs {r.own_jobs_per_s or 0:,.0f} jobs/s"
        for r in offload
    ]
    series = {
        "vs the client with lightwork's settings": [r.ratio or 0.0 for r in offload],
        "vs the client with its defaults": [r.ratio_defaults or 0.0 for r in offload],
    }
    _bars(axis, labels, series, OFFLOAD_TARGET)
    axis.axvline(1.0, color="grey", linewidth=1)
    axis.set_xlim(0, 1.1)
    axis.set_xlabel("jobs/s through lightwork, relative to the engine's client")
    axis.set_title("4. offload to a local Redis")
