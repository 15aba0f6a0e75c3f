"""Deadlines (hypothesis): whatever is armed, disarmed and re-armed from a timer, none is late.

A fake clock and a fake loop stand in for time, so that a run checks thousands of
interleavings in a moment: after every step, the one loop timer must be set for the earliest
bucket still holding a deadline, and firing the timers in order must reach every deadline
within a bucket of its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import TYPE_CHECKING, Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

import lightwork
from lightwork import TaskHandle
from lightwork._core import _deadlines
from lightwork._core._deadlines import RESOLUTION_S, SLACK, Deadlines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """The one method of a loop that ``Deadlines`` calls, on the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timers: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[[], None], **_: Any) -> Timer:
        timer = Timer(self.clock.now + delay, callback)
        self.timers.append(timer)
        return timer

    def next_timer(self) -> Timer | None:
        live = [t for t in self.timers if not t.cancelled]
        return min(live, key=lambda t: t.when) if live else None


class Timers:
    """Stands for the scheduler: on a deadline, it notes how late it came, and may arm a later one.

    The handles are real ``TaskHandle`` objects (the compiled ``Deadlines`` takes no other),
    owned by a scheduler that never runs them.
    """

    def __init__(self, loop: Loop, clock: Clock, slack: int = SLACK) -> None:
        self.deadlines = Deadlines(cast("asyncio.AbstractEventLoop", loop), self.fired)
        self.deadlines.slack = slack
        self.clock = clock
        self.due: dict[TaskHandle[Any], float] = {}
        self.rearm_s: dict[TaskHandle[Any], float | None] = {}
        self.late_by = 0.0

    def arm(self, handle: TaskHandle[Any], delay: float, rearm_s: float | None) -> None:
        self.due[handle], self.rearm_s[handle] = self.clock.now + delay, rearm_s
        self.deadlines.arm(handle, self.due[handle])

    def disarm(self, handle: TaskHandle[Any]) -> None:
        self.deadlines.disarm(handle)
        self.due.pop(handle, None)

    def fired(self, handle: TaskHandle[Any]) -> None:
        self.late_by = max(self.late_by, self.clock.now - self.due.pop(handle))
        rearm_s = self.rearm_s.pop(handle)
        if rearm_s is not None:  # a slow warning, then the timeout
            self.arm(handle, rearm_s, None)


def new_handles(n: int) -> list[TaskHandle[Any]]:
    owner = lightwork.Scheduler()
    handles = []
    for _ in range(n):
        coro = asyncio.sleep(0)
        coro.close()  # never run: only its handle's deadline is
        context = contextvars.Context()
        options = (None,) * 6  # no timeout, thresholds, callbacks or run_if
        handles.append(TaskHandle(owner, "armed", coro, context, *options, shield=False))
    return handles


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["arm", "disarm", "fire", "wait"]),
        st.integers(0, 7),  # which handle
        st.floats(0.0, 2.0),  # a delay, in seconds
        st.one_of(st.none(), st.floats(0.0, 30.0)),  # a later deadline its timer arms
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations=OPERATIONS, slack=st.sampled_from([0, 1, SLACK]))
def test_the_timer_always_wakes_for_the_earliest_deadline_and_none_is_late(
    operations: list[tuple[str, int, float, float | None]], slack: int
) -> None:
    clock = Clock()
    loop = Loop(clock)
    timers = Timers(loop, clock, slack)  # a small slack: buckets of 8 handles get compacted
    deadlines = timers.deadlines
    handles = new_handles(8)
    with _patched_clock(clock):
        for operation, which, delay, rearm_s in operations:
            handle = handles[which]
            if operation == "arm":
                if handle._deadline is None:  # a task has one deadline at a time
                    timers.arm(handle, delay, rearm_s)
            elif operation == "disarm":
                timers.disarm(handle)
            elif operation == "fire":
                _fire_next(loop, clock)
            else:  # time passes, and the loop runs each timer at its time
                until = clock.now + delay
                while (timer := loop.next_timer()) is not None and timer.when <= until:
                    _fire_next(loop, clock)
                    _check_the_timer(deadlines)
                clock.now = until
            _check_the_timer(deadlines)
        while loop.next_timer() is not None:
            _fire_next(loop, clock)
            _check_the_timer(deadlines)
    assert timers.due == {}  # every deadline armed was reached
    assert timers.late_by <= RESOLUTION_S + 1e-3


def _fire_next(loop: Loop, clock: Clock) -> None:
    timer = loop.next_timer()
    if timer is not None:
        clock.now = max(clock.now, timer.when) + 1e-6  # running a timer takes a little time
        timer.cancelled = True
        timer.callback()


def _check_the_timer(deadlines: Deadlines) -> None:
    for bucket in deadlines._buckets.values():  # disarmed handles linger, but never many
        handles = bucket.handles
        assert bucket.armed == len({id(h) for h in handles if h._deadline is bucket}) > 0
        assert len(handles) - bucket.armed <= max(bucket.armed, deadlines.slack)
    held = [key for key, bucket in deadlines._buckets.items() if bucket.handles]
    if held:
        timer = cast("Timer | None", deadlines._timer)
        assert timer is not None
        assert not timer.cancelled
        assert deadlines._timer_key <= min(held)


@contextlib.contextmanager
def _patched_clock(clock: Clock) -> Iterator[None]:
    """Make ``Deadlines`` read the fake clock, for one example.

    Not pytest's ``monkeypatch``: hypothesis runs every example within one call of the test.
    """
    saved = vars(_deadlines)["perf_counter"]
    setattr(_deadlines, "perf_counter", clock)  # noqa: B010 -- not among its typed names
    try:
        yield
    finally:
        setattr(_deadlines, "perf_counter", saved)  # noqa: B010


def test_a_bucket_lets_go_of_disarmed_handles() -> None:
    """Ended tasks are freed at once, not when their bucket's time comes (a 30 s timeout)."""
    clock = Clock()
    timers = Timers(Loop(clock), clock)
    deadlines = timers.deadlines
    handles = new_handles(100)
    with _patched_clock(clock):
        for handle in handles:
            timers.arm(handle, 30.0, None)
        [bucket] = deadlines._buckets.values()
        for handle in handles[:-1]:
            deadlines.disarm(handle)
        assert handles[-1] in bucket.handles
        assert len(bucket.handles) <= 1 + SLACK  # not the 99 ended ones
        deadlines.disarm(handles[-1])
        assert not bucket.handles
        assert deadlines._buckets == {}
