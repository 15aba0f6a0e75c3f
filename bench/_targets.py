"""The targets of issue 15 (those of issue 6, with 1,100 bytes per task), checked in one run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from ._contenders import BY_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._http import HttpResult
    from ._micro import MemoryResult, MicroResult
    from ._offload import OffloadResult

Status = Literal["met", "missed", "not measured"]
TASK_MS: Final = 50.0
OFFLOAD_SHARE: Final = 0.9


BYTES_TARGET: Final = 1100
"""Bytes per pending task, at most (issue 15; issue 6 asked for 1,200)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target, what this run measured for it, and whether it was met."""

    target: str
    measured: str
    status: Status


def _status(ok: bool) -> Status:
    return "met" if ok else "missed"


def _on_uvloop(
    micro: Sequence[MicroResult], contender: str, figure: Callable[[MicroResult], float | None]
) -> dict[str, float]:
    """One figure of one contender on uvloop, by workload, where it was measured."""
    return {
        r.workload: value
        for r in micro
        if r.loop == "uvloop" and r.contender == contender and (value := figure(r)) is not None
    }


def _micro_verdicts(micro: Sequence[MicroResult]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    ratios = _on_uvloop(micro, "lightwork_options", lambda r: r.ratio)
    if ratios:
        verdicts.append(
            Verdict(
                "lightwork add_task with timeout + callbacks + slow warning: <= 1.3x the floor "
                "on uvloop",
                ", ".join(f"{workload} {ratio:.2f}x" for workload, ratio in ratios.items()),
                _status(max(ratios.values()) <= 1.3),
            )
        )
    ours = _on_uvloop(micro, "lightwork_options", lambda r: r.ns_per_task)
    theirs = _on_uvloop(micro, "aiojobs", lambda r: r.ns_per_task)
    if both := [w for w in ours if w in theirs]:
        verdicts.append(
            Verdict(
                "... and faster than aiojobs (uvloop)",
                ", ".join(f"{w} {ours[w]:,.0f} vs {theirs[w]:,.0f} ns" for w in both),
                _status(all(ours[w] < theirs[w] for w in both)),
            )
        )
    target = "with loop-block detection on: <= 1.6x the floor on uvloop"
    if blocking := _on_uvloop(micro, "lightwork_block", lambda r: r.ratio):
        text = ", ".join(f"{workload} {ratio:.2f}x" for workload, ratio in blocking.items())
        verdicts.append(Verdict(target, text, _status(max(blocking.values()) <= 1.6)))
    elif micro:
        reason = next((r.skipped for r in micro if r.contender == "lightwork_block"), None)
        verdicts.append(Verdict(target, reason or "not run", "not measured"))
    return verdicts


def _memory_verdicts(memory: Sequence[MemoryResult]) -> list[Verdict]:
    lightwork = [
        r for r in memory if BY_KEY[r.contender].is_lightwork and r.bytes_per_task is not None
    ]
    if not lightwork:
        return []
    worst = max(lightwork, key=lambda r: r.bytes_per_task or 0.0)
    return [
        Verdict(
            "<= 1,100 bytes per pending task",
            f"{worst.bytes_per_task:,.0f} B at most ({worst.label}, {worst.loop})",
            _status((worst.bytes_per_task or 0.0) <= BYTES_TARGET),
        )
    ]


def _http_verdicts(http: Sequence[HttpResult]) -> list[Verdict]:
    by_key = {r.endpoint: r for r in http}
    plain, middleware = by_key["plain"], by_key["plain_middleware"]
    ours, bare, starlette = by_key["lightwork"], by_key["create_task"], by_key["starlette_task"]
    versus_bare = ours.requests_per_s / bare.requests_per_s
    versus_starlette = ours.requests_per_s / starlette.requests_per_s
    middleware_ratio = middleware.requests_per_s / plain.requests_per_s
    return [
        Verdict(
            "BackgroundMiddleware on a plain endpoint: >= 0.95x the endpoint without it",
            f"{middleware_ratio:.2f}x",
            _status(middleware_ratio >= 0.95),
        ),
        Verdict(
            "endpoint with a lightwork task: >= 0.9x the bare create_task endpoint's req/s",
            f"{versus_bare:.2f}x ({ours.requests_per_s:,.0f} vs {bare.requests_per_s:,.0f})",
            _status(versus_bare >= 0.9),
        ),
        Verdict(
            "... and >= 2x the Starlette BackgroundTask endpoint's",
            f"{versus_starlette:.2f}x ({starlette.requests_per_s:,.0f} req/s)",
            _status(versus_starlette >= 2.0),
        ),
        Verdict(
            "... with p99 <= 2x the bare endpoint's, never including the task's 50 ms",
            f"p99 {ours.p99_ms:.1f} ms vs {bare.p99_ms:.1f} ms",
            _status(ours.p99_ms <= 2 * bare.p99_ms and ours.p99_ms < TASK_MS),
        ),
    ]


def _offload_verdict(offload: Sequence[OffloadResult]) -> Verdict:
    target = "offload bridge keeps >= 90% of the engine's own enqueue rate"
    measured = [r for r in offload if r.ratio is not None]
    if not measured:
        reasons = sorted({r.skipped for r in offload if r.skipped})
        return Verdict(target, "; ".join(reasons) or "part 4 not run", "not measured")
    text = ", ".join(
        f"{r.label} {r.ratio:.2f}x "
        f"({r.lightwork_jobs_per_s:,.0f} vs {r.own_jobs_per_s:,.0f} jobs/s with the same "
        f"settings; {r.ratio_defaults:.2f}x of its defaults)"
        for r in measured
    )
    return Verdict(target, text, _status(all((r.ratio or 0.0) >= OFFLOAD_SHARE for r in measured)))


def check(
    micro: Sequence[MicroResult],
    memory: Sequence[MemoryResult],
    http: Sequence[HttpResult],
    offload: Sequence[OffloadResult],
) -> list[Verdict]:
    """Return a verdict for every target of issue 15 that this run could measure, and the rest."""
    verdicts = [*_micro_verdicts(micro), *_memory_verdicts(memory)]
    if http:
        verdicts.extend(_http_verdicts(http))
    verdicts.append(_offload_verdict(offload))
    return verdicts
