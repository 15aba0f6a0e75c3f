"""Counters and histograms of a scheduler's tasks, per task name, kept on the hot path.

The scheduler calls :class:`TaskStats` once when a task is added, once when it starts and
once when it ends, so each call is a dict lookup and a few integer updates: no locks, no
clock reads, no allocation after a name's first task. Everything derived (totals,
cumulative buckets) is computed in :meth:`TaskStats.snapshot`, which Prometheus scrapes and
the status page call at their own pace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast, final

from ._handle import COMPLETED, TERMINAL_STATES, TaskState
from ._logging import TASK_BLOCKING, TASK_SLOW

if TYPE_CHECKING:
    from ._handle import TaskHandle

DURATION_BUCKETS_S: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds of the wall-time histogram, in seconds: Prometheus's defaults, then minutes."""

BLOCKED_BUCKETS_S: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Upper bounds of the loop-held-time histogram, in seconds: around the 20 ms block threshold."""

MAX_NAMES: Final = 500
"""Distinct task names kept apart; later names share :data:`OTHER_NAME`, so that names built
from data (``name=f"email-{user_id}"``) cannot grow memory or metric labels without bound."""

OTHER_NAME: Final = "(other)"


@final
class _Tally:
    """One bucket's count.

    Compiled, an int in a slot is added to in place, where an int in a list is boxed anew at
    each addition once past 256: an object made, and the old one freed.
    """

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class _Histogram:
    __slots__ = ("bounds", "counts", "max", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        # Per bucket; the last one is above every bound.
        self.counts = [_Tally() for _ in range(len(bounds) + 1)]
        self.sum = 0.0
        self.max = 0.0

    def observe(self, value: float) -> None:
        if value == 0.0:  # most blocked times, unless steps are timed: nothing to add or scan
            self.counts[0].n += 1
            return
        # A scan from the first bound, not bisect_left(): most tasks land in the first few
        # buckets, and compiled, the scan compares unboxed floats where bisect_left() is a
        # call with a boxed one (1,100 instructions a task for its two histograms).
        bucket = 0
        for bound in self.bounds:
            if value <= bound:
                break
            bucket += 1
        self.counts[bucket].n += 1
        self.sum += value
        if value > self.max:  # noqa: PLR1730 -- max() costs five times this, on the hot path
            self.max = value

    def add(self, other: _Histogram) -> None:
        for tally, more in zip(self.counts, list(other.counts), strict=True):
            tally.n += more.n
        self.sum += other.sum
        self.max = max(self.max, other.max)

    def snapshot(self) -> dict[str, Any]:
        cumulative, total = [], 0
        for tally in list(self.counts):
            total += tally.n
            cumulative.append(total)
        return {"counts": cumulative, "count": total, "sum": self.sum, "max": self.max}


@final
class _NameStats:
    __slots__ = (
        "blocked",
        "blocking",
        "completed",
        "duration",
        "ended",
        "in_flight",
        "queued",
        "scheduled",
        "slow",
    )

    def __init__(self) -> None:
        self.scheduled = 0
        self.queued = 0
        self.in_flight = 0
        self.slow = 0
        self.blocking = 0
        # Completed apart: compiled, an int attribute adds natively, and most tasks complete.
        self.completed = 0
        self.ended: dict[TaskState, int] = dict.fromkeys(TERMINAL_STATES, 0)
        del self.ended[COMPLETED]
        self.duration = _Histogram(DURATION_BUCKETS_S)
        self.blocked = _Histogram(BLOCKED_BUCKETS_S)

    def add(self, other: _NameStats) -> None:
        self.scheduled += other.scheduled
        self.queued += other.queued
        self.in_flight += other.in_flight
        self.slow += other.slow
        self.blocking += other.blocking
        self.completed += other.completed
        for state, n in list(other.ended.items()):
            self.ended[state] += n
        self.duration.add(other.duration)
        self.blocked.add(other.blocked)

    def snapshot(self) -> dict[str, Any]:
        counts: dict[str, Any] = {
            "scheduled": self.scheduled,
            "queued": self.queued,
            "in_flight": self.in_flight,
        }
        ended = {**self.ended, COMPLETED: self.completed}
        counts.update((state.value, ended[state]) for state in TERMINAL_STATES)
        counts["slow"] = self.slow
        counts["blocking"] = self.blocking
        counts["duration_s"] = self.duration.snapshot()
        counts["blocked_s"] = self.blocked.snapshot()
        return counts


class TaskStats:
    """Counts tasks per name: scheduled, queued, in flight, by end state, warnings, and times.

    Called from the scheduler's event loop, and ``added`` also from threads that add tasks
    (a sync endpoint's). :meth:`snapshot` may be called from any thread: it copies what it
    reads, so at worst it sees one task's update half applied.
    """

    __slots__ = ("_names", "_other")

    def __init__(self) -> None:
        self._names: dict[str, _NameStats] = {}
        self._other: _NameStats | None = None

    def __repr__(self) -> str:
        scheduled = sum(s.scheduled for s in list(self._names.values()))
        return f"<TaskStats names={len(self._names)} scheduled={scheduled}>"

    def added(self, handle: TaskHandle[Any]) -> None:
        """Count a new task; it keeps its name's statistics for the rest of its counts."""
        name = handle.name
        stats = self._names.get(name) or self._new_name(name)
        handle._stats = stats  # a slot read, not a dict look-up, at each count after this
        stats.scheduled += 1
        stats.queued += 1

    def started(self, handle: TaskHandle[Any]) -> None:
        stats = cast("_NameStats", handle._stats)
        stats.queued -= 1
        stats.in_flight += 1

    def ended(self, handle: TaskHandle[Any], state: TaskState) -> None:
        stats = cast("_NameStats", handle._stats)
        if state is COMPLETED:
            stats.completed += 1
        else:
            stats.ended[state] += 1
        if handle._started_at == 0.0:  # never started; not `not ...`, which boxes the float
            stats.queued -= 1
            return
        stats.in_flight -= 1
        if handle._ended_at != 0.0:
            stats.duration.observe(handle._ended_at - handle._started_at)
        stats.blocked.observe(handle.blocked)

    def warned(self, handle: TaskHandle[Any], event: str) -> None:
        stats = cast("_NameStats", handle._stats)
        if event == TASK_SLOW:
            stats.slow += 1
        elif event == TASK_BLOCKING:
            stats.blocking += 1
        else:
            raise ValueError(f"no statistic counts the event {event!r}")

    def _new_name(self, name: str) -> _NameStats:
        if len(self._names) < MAX_NAMES:
            # One step, so that two threads adding a name's first tasks keep one entry.
            return self._names.setdefault(name, _NameStats())
        if self._other is None:
            self._other = _NameStats()
        return self._other

    def snapshot(self) -> dict[str, Any]:
        """Return every count as JSON-ready data: totals, then per task name.

        Shape: ``{"buckets": {"duration_s": [...], "blocked_s": [...]}, "totals": {...},
        "tasks": {name: {...}}}``. Totals and each name hold ``scheduled``, ``queued``,
        ``in_flight``, one count per terminal state, ``slow``, ``blocking``, and the
        histograms ``duration_s`` and ``blocked_s``: ``counts`` cumulative per upper bound
        in ``buckets`` plus one last for ``+Inf`` (Prometheus's ``le``), ``count``, ``sum``
        and ``max`` in seconds.
        """
        names = list(self._names.items())
        if self._other is not None:
            names.append((OTHER_NAME, self._other))
        totals = _NameStats()
        for _, stats in names:
            totals.add(stats)
        return {
            "buckets": {
                "duration_s": list(DURATION_BUCKETS_S),
                "blocked_s": list(BLOCKED_BUCKETS_S),
            },
            "totals": totals.snapshot(),
            "tasks": {name: stats.snapshot() for name, stats in names},
        }
