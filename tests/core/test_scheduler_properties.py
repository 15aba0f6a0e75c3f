"""The scheduler as a state machine (hypothesis): any interleaving of add, release, cancel,
timeout and shutdown, under any limits and policies, keeps the books straight.

The machine owns an event loop and runs each step on it. Tasks complete, fail, hang until
released (shielded or not), run past their timeout, or are tasks of an ``@offloadable``
function, which overflow and shutdown may send to the offload bridge. After every step the
loop is settled (every task that can end by itself has ended), and the invariants are
checked: the counts add up, every task is in one state that its log events agree with,
ended tasks ended as the model says, the limits hold and no queued task could have started,
and after shutdown nothing is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
import structlog
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from structlog.testing import LogCapture

from lightwork import (
    BackgroundQueueFull,
    Offloader,
    Scheduler,
    SchedulerClosedError,
    TaskHandle,
    TaskState,
)
from lightwork._core._handle import TERMINAL_STATES
from lightwork.backends.memory import MemoryBackend
from lightwork.testing import TaskRecorder
from tests import offload_jobs
from tests.conftest import LOOPS
from tests.outcomes import ends_by_task

BOUND_S: Final = 10.0
"""A deadline for settling the loop: never reached unless a task fails to end."""

TIMEOUT_S: Final = 0.005
SETTINGS: Final = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


LIMITS: Final = st.integers(0, 3).map(lambda n: n or None)
"""A limit of 1 to 3, or none (a quarter of the time)."""


class Kind(enum.StrEnum):
    """What a task in the machine does; also its name, so per-name limits apply to it."""

    COMPLETE = "complete"
    FAIL = "fail"
    HANG = "hang"  # until released
    TIMEOUT = "timeout"  # waits forever, with a short timeout
    OFFLOADABLE = "shout"  # an @offloadable function's task, run here unless sent away


NATURAL_END: Final = {
    Kind.COMPLETE: TaskState.COMPLETED,
    Kind.FAIL: TaskState.FAILED,
    Kind.HANG: TaskState.COMPLETED,  # once released
    Kind.TIMEOUT: TaskState.TIMED_OUT,
    Kind.OFFLOADABLE: TaskState.COMPLETED,
}


class Boom(Exception):
    """What the failing tasks raise."""


@dataclass
class Tracked:
    """A task the machine added, what releases it, and the end the model expects, once known."""

    handle: TaskHandle[Any]
    kind: Kind
    release: asyncio.Event
    expected: TaskState | None = None
    released: bool = field(default=False)

    def ends_by_itself(self) -> bool:
        return self.kind is not Kind.HANG or self.released


async def run_task(kind: Kind, release: asyncio.Event) -> str:
    await asyncio.sleep(0)
    if kind is Kind.FAIL:
        raise Boom(kind)
    if kind is not Kind.COMPLETE:
        await release.wait()  # never set for a TIMEOUT task
    return kind.value


async def ended(handle: TaskHandle[Any]) -> None:
    with contextlib.suppress(Exception):
        await handle


class SchedulerMachine(RuleBasedStateMachine):
    """Drives one Scheduler on an event loop of its own; the model is the list of tasks."""

    new_loop: Callable[[], asyncio.AbstractEventLoop] = staticmethod(asyncio.new_event_loop)

    def __init__(self) -> None:
        super().__init__()
        self.loop = self.new_loop()
        self.capture = LogCapture()
        structlog.configure(processors=[self.capture])
        # Every task, the refused ones and the bridge's hand-offs included.
        self.recorder = TaskRecorder().__enter__()
        self.scheduler: Scheduler | None = None
        self.tasks: list[Tracked] = []
        """The tasks the machine added and holds a handle for."""
        self.closed = False

    # -- plumbing ---------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def live(self) -> Scheduler:
        assert self.scheduler is not None
        return self.scheduler

    async def settle(self) -> None:
        """Wait until every task that can end by itself has ended (queued ones start meanwhile).

        The tasks the machine did not add itself, the bridge's hand-offs, all end by themselves.
        """
        async with asyncio.timeout(BOUND_S):
            while ending := [
                h
                for h in self.recorder.tasks
                if h.state is TaskState.RUNNING
                and (h.id not in self.tracked or self.tracked[h.id].ends_by_itself())
            ]:
                await asyncio.gather(*map(ended, ending))

    @property
    def tracked(self) -> dict[int, Tracked]:
        return {t.handle.id: t for t in self.tasks}

    def all_in_state(self, state: TaskState) -> list[TaskHandle[Any]]:
        return [h for h in self.recorder.tasks if h.state is state]

    def in_state(self, state: TaskState) -> list[Tracked]:
        return [t for t in self.tasks if t.handle.state is state]

    def has_slot(self, kind: Kind) -> bool:
        """Whether the scheduler's limits let a task of *kind* start now, by the model."""
        running = self.in_state(TaskState.RUNNING)
        admission = self.live._admission
        if admission is None:
            return True
        if admission.max_concurrency is not None and len(running) >= admission.max_concurrency:
            return False
        limit = admission.limits.get(kind.value)
        return limit is None or sum(t.kind is kind for t in running) < limit

    def queue_full(self) -> bool:
        admission = self.live._admission
        return (
            admission is not None
            and admission.max_pending is not None
            and len(self.in_state(TaskState.PENDING)) >= admission.max_pending
        )

    # -- rules ------------------------------------------------------------------------

    @initialize(
        max_concurrency=LIMITS,
        max_pending=LIMITS,
        hang_limit=LIMITS,
        overflow=st.sampled_from(["reject", "wait", "drop", "offload"]),
        pending_at_shutdown=st.sampled_from(["run", "drop", "spill"]),
    )
    def start(
        self,
        max_concurrency: int | None,
        max_pending: int | None,
        hang_limit: int | None,
        overflow: Any,
        pending_at_shutdown: Any,
    ) -> None:
        self.scheduler = Scheduler(
            drain_timeout=0.005,
            shield_timeout=0.01,
            offload=Offloader(MemoryBackend(), outbox=None),
            slow_threshold=None,
            block_threshold=None,
            max_concurrency=max_concurrency,
            max_pending=max_pending,
            limits=None if hang_limit is None else {Kind.HANG.value: hang_limit},
            overflow=overflow,
            pending_at_shutdown=pending_at_shutdown,
        )
        self.run(self.scheduler.start())

    @rule(kind=st.sampled_from(Kind), shield=st.booleans())
    def add(self, kind: Kind, shield: bool) -> None:
        self.run(self._add(kind, shield))

    @rule(kinds=st.lists(st.sampled_from(Kind), min_size=2, max_size=6))
    def add_a_burst(self, kinds: list[Kind]) -> None:
        """Add several tasks in a row: queues fill, and overflow, more often."""
        for kind in kinds:
            self.run(self._add(kind, shield=False))

    def _add_task(self, kind: Kind, shield: bool, release: asyncio.Event) -> TaskHandle[Any]:
        if kind is Kind.OFFLOADABLE:  # the call form, which the bridge can send on
            return self.live.add_task(offload_jobs.shout, "hi")
        timeout = TIMEOUT_S if kind is Kind.TIMEOUT else None
        coro = run_task(kind, release)
        return self.live.add_task(coro, name=kind.value, timeout=timeout, shield=shield)

    async def _add(self, kind: Kind, shield: bool) -> None:
        overflow = self.live.overflow
        offloads = overflow == "offload" and kind is Kind.OFFLOADABLE
        release = asyncio.Event()
        starts, full = self.has_slot(kind), self.queue_full()
        try:
            handle = self._add_task(kind, shield, release)
        except SchedulerClosedError:
            assert self.closed
            return
        except BackgroundQueueFull:
            assert not starts
            assert full
            assert overflow in ("reject", "wait") or (overflow == "offload" and not offloads)
            assert self.recorder.tasks[-1].state is TaskState.DROPPED
            return
        assert not self.closed
        assert handle.name == kind.value
        tracked = Tracked(handle, kind, release)
        self.tasks.append(tracked)
        if starts:
            assert handle.state is TaskState.RUNNING
        elif full:
            tracked.expected = TaskState.OFFLOADED if offloads else TaskState.DROPPED
            assert overflow == ("offload" if offloads else "drop")
            assert handle.state is tracked.expected
        else:
            assert handle.state is TaskState.PENDING
        await self.settle()

    @precondition(lambda self: not self.closed)
    @rule()
    def saturate(self) -> None:
        """Fill every free slot with tasks that hang, so that what comes next queues up."""
        for _ in range(4):
            if not self.has_slot(Kind.HANG):
                break
            self.run(self._add(Kind.HANG, shield=False))

    @precondition(lambda self: not self.closed and self.live._admission is not None)
    @rule(kind=st.sampled_from(Kind))
    def overfill(self, kind: Kind) -> None:
        """Add tasks of *kind* until one overflows the queue (or five went in)."""
        for _ in range(5):
            overflows = self.queue_full() and not self.has_slot(kind)
            self.run(self._add(kind, shield=False))
            if overflows:
                break

    @precondition(lambda self: any(t.kind is Kind.HANG and not t.released for t in self.tasks))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hanging = [t for t in self.tasks if t.kind is Kind.HANG and not t.released]
        tracked = data.draw(st.sampled_from(hanging))
        tracked.released = True
        tracked.release.set()
        self.run(self.settle())

    @precondition(lambda self: any(not t.handle.done() for t in self.tasks))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        tracked = data.draw(st.sampled_from([t for t in self.tasks if not t.handle.done()]))
        assert tracked.handle.cancel() is True
        tracked.expected = TaskState.CANCELLED
        self.run(self.settle())

    @precondition(lambda self: any(t.handle.done() for t in self.tasks))
    @rule(data=st.data())
    def cancel_an_ended_task(self, data: st.DataObject) -> None:
        tracked = data.draw(st.sampled_from([t for t in self.tasks if t.handle.done()]))
        assert tracked.handle.cancel() is False

    @precondition(lambda self: len(self.tasks) >= 4 and not self.closed)
    @rule()
    def shutdown(self) -> None:
        """Shut down mid-run (each run that did not also shuts down in its teardown)."""
        spill = self.live.pending_at_shutdown == "spill"
        for tracked in self.tasks:
            if tracked.handle.state is TaskState.PENDING:
                spilled = spill and tracked.kind is Kind.OFFLOADABLE
                tracked.expected = TaskState.OFFLOADED if spilled else TaskState.DROPPED
            elif tracked.handle.state is TaskState.RUNNING:  # settled: an unreleased hang
                tracked.expected = TaskState.CANCELLED
        self.run(self.live.aclose())
        self.closed = True

    # -- invariants -------------------------------------------------------------------

    @precondition(lambda self: self.scheduler is not None)
    @invariant()
    def counts_add_up(self) -> None:
        counts = self.live.counts()
        ended = sum(counts[state.value] for state in TERMINAL_STATES)
        pending = len(self.all_in_state(TaskState.PENDING))
        assert counts["added"] == len(self.recorder.tasks)
        assert counts["added"] == counts["running"] + pending + ended, counts
        for state in (TaskState.RUNNING, *TERMINAL_STATES):
            assert counts[state.value] == len(self.all_in_state(state)), (state, counts)
        totals = self.live.stats()["totals"]
        assert totals["scheduled"] == totals["queued"] + totals["in_flight"] + ended, totals

    @precondition(lambda self: self.scheduler is not None)
    @invariant()
    def each_task_is_in_one_state_its_logs_agree_with(self) -> None:
        ends = ends_by_task(self.capture.entries)
        assert len(ends) == sum(h.done() for h in self.recorder.tasks)
        for handle in self.recorder.tasks:
            assert handle.done() is (handle.state in TERMINAL_STATES)
            if handle.done():
                assert ends[handle.id] == [handle.state]
            else:
                assert handle.id not in ends
        for tracked in self.tasks:
            if tracked.handle.done():
                assert tracked.handle.state is (tracked.expected or NATURAL_END[tracked.kind])
            else:
                assert tracked.expected is None

    @precondition(lambda self: self.scheduler is not None)
    @invariant()
    def limits_hold_and_no_queued_task_could_start(self) -> None:
        admission = self.live._admission
        running = self.in_state(TaskState.RUNNING)
        queued = self.in_state(TaskState.PENDING)
        if admission is None:
            assert queued == []
            return
        if admission.max_concurrency is not None:
            assert len(running) <= admission.max_concurrency
        for name, limit in admission.limits.items():
            assert sum(t.kind.value == name for t in running) <= limit
        if admission.max_pending is not None:
            assert len(queued) <= admission.max_pending
        assert [t for t in queued if self.has_slot(t.kind)] == []
        assert list(admission.queue) == [t.handle for t in queued]  # in the order added

    @precondition(lambda self: self.closed)
    @invariant()
    def after_shutdown_nothing_is_left(self) -> None:
        assert self.live.running == 0
        assert all(h.done() for h in self.recorder.tasks)
        [closed] = [e for e in self.capture.entries if e["event"] == "background_scheduler_closed"]
        assert {key: closed[key] for key in self.live.counts()} == self.live.counts()
        assert not any(e["event"] == "background_task_abandoned" for e in self.capture.entries)

    def teardown(self) -> None:
        try:
            if self.scheduler is not None and not self.closed:
                self.shutdown()
                self.counts_add_up()
                self.each_task_is_in_one_state_its_logs_agree_with()
                self.after_shutdown_nothing_is_left()
        finally:
            self.recorder.__exit__(None, None, None)
            self.loop.close()
            structlog.reset_defaults()


@pytest.mark.parametrize("loop", list(LOOPS))
def test_any_interleaving_keeps_the_books_straight(loop: str) -> None:
    on_loop = {"new_loop": staticmethod(LOOPS[loop])}
    machine = type(f"SchedulerOn{loop}", (SchedulerMachine,), on_loop)
    run_state_machine_as_test(machine, settings=SETTINGS)
