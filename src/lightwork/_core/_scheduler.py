"""The scheduler: runs tasks as plain asyncio tasks, times them, limits them, drains them.

The hot path is one ``loop.create_task`` around a driver (``_monitor.launch``: compiled, a
compiled coroutine of 80 bytes; as plain Python, a slotted object; either starts the task's
clock and ends it in its last step), and at most one deadline per task in shared buckets
(the slow-task warning first, then the timeout): no interpreted wrapper coroutine, no cancel
scope, no task group, no done-callback, no timer of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar, get_args

import anyio
import anyio.from_thread

from . import _logging as log
from ._admission import OVERFLOW_POLICIES, Admission, Overflow, check_limit
from ._awaiting import enter_scheduler, start_scheduler
from ._deadlines import Deadlines
from ._exceptions import BackgroundQueueFull, SchedulerClosedError
from ._handle import HOLDS_SLOT, PENDING, RESERVED, RUNNING, TERMINAL_STATES, TaskHandle, TaskState
from ._monitor import count_gc_time, launch
from ._options import check_duration
from ._ports import NO_OFFLOAD
from ._reporting import task_fields
from ._shutdown import PendingAtShutdown, Shutdown
from ._source import SourceOwner, TaskSource
from ._stats import TaskStats
from ._watchdog import LoopWatchdog

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from ._ports import OffloadPort

T = TypeVar("T")

_Phase = Literal["idle", "running", "closing", "closed"]
_PENDING_AT_SHUTDOWN: Final = get_args(PendingAtShutdown)
_Task: Final = asyncio.Task
_get_running_loop: Final = asyncio.get_running_loop  # a C static, compiled: no lookup
_ASK_LOOP_EVERY_S: Final = 0.1
"""How often a thread waiting for the loop's answer checks that the loop still runs."""


class Scheduler(Shutdown, TaskSource, SourceOwner):
    """Runs background tasks on the event loop, detached from whoever added them.

    The core of ``lightwork.Scheduler``, which plugs the offload bridge in as its
    ``offload`` port; its options are documented there.
    """

    def __init__(
        self,
        *,
        timeout: float | None = 30.0,
        slow_threshold: float | None = 0.1,
        block_threshold: float | None = 0.02,
        drain_timeout: float = 10.0,
        max_threads: int = 10,
        log_args: bool = False,
        watchdog: float | None = None,
        time_steps: bool = False,
        offload: OffloadPort | None = None,
        max_concurrency: int | None = None,
        max_pending: int | None = None,
        limits: Mapping[str, int] | None = None,
        overflow: Overflow = "reject",
        pending_at_shutdown: PendingAtShutdown = "run",
        shield_timeout: float = 30.0,
    ) -> None:
        check_duration("timeout", timeout)
        check_duration("slow_threshold", slow_threshold)
        check_duration("block_threshold", block_threshold)
        check_duration("drain_timeout", drain_timeout, allow_none=False)
        check_duration("watchdog", watchdog)
        if not isinstance(time_steps, bool):
            raise TypeError(f"time_steps must be a bool, not {time_steps!r}")
        check_duration("shield_timeout", shield_timeout, allow_none=False)
        check_limit("max_threads", max_threads)
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, not {overflow!r}")
        if pending_at_shutdown not in _PENDING_AT_SHUTDOWN:
            raise ValueError(
                f"pending_at_shutdown must be one of {_PENDING_AT_SHUTDOWN}, "
                f"not {pending_at_shutdown!r}"
            )
        self.timeout = timeout
        self.slow_threshold = slow_threshold
        self.block_threshold = block_threshold
        self.drain_timeout = drain_timeout
        self.max_threads = max_threads
        self.log_args = log_args
        self.time_steps = time_steps
        self._running: set[TaskHandle[Any]] = set()
        self._starting: list[TaskHandle[Any]] = []  # whose first timer _arm_soon() arms
        sample_s = None if time_steps else block_threshold
        self.watchdog = (
            None
            if watchdog is None and sample_s is None
            else LoopWatchdog(
                watchdog, sample_s=sample_s, tasks=self._running, on_block=self._on_sampled_block
            )
        )
        """The thread that samples tasks holding the event loop (unless ``time_steps``), and
        reports a stuck one (``event_loop_blocked``) if ``watchdog`` asks for it."""
        self.offloader: OffloadPort = NO_OFFLOAD if offload is None else offload
        """The port of the offload bridge; without one, no task is ever handed over."""
        self.overflow: Overflow = overflow
        self.pending_at_shutdown: PendingAtShutdown = pending_at_shutdown
        self.shield_timeout = shield_timeout
        limited = max_concurrency is not None or max_pending is not None or limits
        self._admission = (
            Admission(max_concurrency, max_pending, limits or {}) if limited else None
        )  # None: nothing to count on the hot path
        # Whether a task's call is kept, to hand over at overflow or shutdown.
        self._keeps_call = (
            self.offloader.accepts
            if overflow == "offload" or pending_at_shutdown == "spill"
            else None
        )
        self._phase: _Phase = "idle"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines = Deadlines(None, self._on_timer)
        self._limiter: anyio.CapacityLimiter | None = None
        self._debug = False
        self._callbacks: set[asyncio.Task[None]] = set()
        # For the few handles someone awaits before they end, not a slot on every handle.
        self._waiters: dict[TaskHandle[Any], asyncio.Future[None]] = {}
        self._handed_over: set[TaskHandle[Any]] = set()  # from other threads, not yet started
        self._offloading = False
        self._stats = TaskStats()

    def __repr__(self) -> str:
        counts = " ".join(f"{key}={n}" for key, n in self.counts().items())
        return f"<Scheduler {self._phase} {counts}>"

    @property
    def _scheduler(self) -> Scheduler:
        return self

    @property
    def running(self) -> int:
        """How many tasks are running now."""
        return len(self._running)

    def counts(self) -> dict[str, int]:
        """Return how many tasks were added, are running, and ended in each terminal state."""
        totals = self._stats.snapshot()["totals"]
        counts = {"added": totals["scheduled"], "running": len(self._running)}
        counts.update((state.value, totals[state.value]) for state in TERMINAL_STATES)
        return counts

    def running_tasks(self) -> list[TaskHandle[Any]]:
        """Return the tasks running now, longest-running first."""
        return sorted(self._running, key=lambda h: h._started_at or math.inf)

    def stats(self) -> dict[str, Any]:
        """Return counters and histograms, in all and per task name, and the running tasks.

        JSON-ready; what ``lightwork.prometheus`` exports and ``lightwork.status`` shows.
        Durations are in seconds; ``blocked_s`` is time a task's steps held the event loop.
        """
        snapshot = self._stats.snapshot()
        snapshot["running"] = [
            {
                "id": h.id,
                "name": h.name,
                "state": h.state.value,
                "duration_s": h.duration,
                "blocked_s": h.blocked,
                "route": h.route,
            }
            for h in self.running_tasks()
        ]
        return snapshot

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Coroutine[Any, Any, None]:
        """Bind to the running event loop and accept tasks; done for you by the app's lifespan."""
        return start_scheduler(self)

    def __aenter__(self) -> Coroutine[Any, Any, Self]:
        return enter_scheduler(self)

    def __aexit__(self, *exc_info: object) -> Coroutine[Any, Any, None]:
        return self.aclose()

    def _begin(self) -> None:
        self._bind(asyncio.get_running_loop())
        if self._phase != "running":
            self._phase = "running"
            log.logger.debug(log.SCHEDULER_STARTED, lifespan=True)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            if self._running and self._loop is not None and not self._loop.is_closed():
                raise RuntimeError(
                    "this lightwork Scheduler is running tasks on another event loop; "
                    "use one Scheduler per event loop"
                )
            self._loop = loop
            self._limiter = anyio.CapacityLimiter(self.max_threads)
            self._deadlines.close()
            self._deadlines = Deadlines(loop, self._on_timer)
            self._starting = []  # their arming, due on the old loop, will not run
            count_gc_time()
            if self.watchdog is not None:
                self.watchdog.stop()
        if self.watchdog is not None:
            self.watchdog.start()
        self._debug = log.debug_enabled()

    # -- accepting tasks --------------------------------------------------------------------

    def _shut(self) -> bool:
        """Tell whether the scheduler refuses new tasks: closing, or closed on this loop."""
        return self._phase == "closing" or (self._phase == "closed" and not self._fresh_loop())

    def _check_open(self) -> None:
        if self._offloading:  # handing a task over to the bridge, at overflow or shutdown
            return
        if self._shut():
            raise SchedulerClosedError(
                f"the lightwork scheduler is {self._phase}: tasks can no longer be added "
                "(add them before the app's shutdown begins)"
            )

    def _fresh_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Tell whether the caller's loop is a new one and the scheduler's old loop has stopped.

        That is how a test client without lifespan works (a new loop per request), and how a
        closed scheduler comes back in the next test: it starts again on the new loop.
        """
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
        return self._loop is None or (loop is not self._loop and not self._loop.is_running())

    def _accept(self, handle: TaskHandle[Any], *, may_raise: bool = True) -> None:
        """Start *handle* now, from the loop or from any other thread.

        *may_raise* says whether the caller can hear of a full queue (``add_task`` can;
        a task released after its response cannot, and is dropped instead).
        """
        try:
            loop = _get_running_loop()
        except RuntimeError:
            self._accept_from_thread(handle, may_raise)
            return
        if loop is self._loop and (self._phase == "running" or self._offloading):
            self._start(handle, may_raise)
        elif self._phase != "closing" and self._fresh_loop(loop):
            self._start_on_first_use(loop)
            self._start(handle, may_raise)
        elif self._phase == "running":
            self._drop(handle, "added on another running event loop than the scheduler's")
            raise RuntimeError("tasks must be added on the scheduler's own event loop")
        else:
            self._drop(handle, f"scheduler {self._phase}")
            self._check_open()

    def _accept_from_thread(self, handle: TaskHandle[Any], may_raise: bool) -> None:
        loop = self._loop
        if self._phase == "running" and loop is not None and loop.is_running():
            self._handed_over.add(handle)  # first, so that a shutdown from now on waits for it
            admission = self._admission
            if may_raise and admission is not None and admission.max_pending is not None:
                # A queue that may be full: the thread waits for the loop's answer, to hear
                # of an overflow as a caller on the loop does, not to be dropped after it.
                try:
                    self._call_on_loop(functools.partial(self._start, may_raise=True), handle)
                finally:
                    self._handed_over.discard(handle)  # _start did, unless the loop stopped
                return
            try:
                loop.call_soon_threadsafe(self._start, handle)
            except RuntimeError:  # the loop closed meanwhile
                self._handed_over.discard(handle)
            else:
                return
        # Not running on a live loop: a worker thread of an event loop (a sync endpoint's,
        # with no lifespan to start the scheduler) has it accepted there, as the loop would.
        try:
            accept = functools.partial(self._accept, may_raise=may_raise)
            error = anyio.from_thread.run_sync(self._on_loop, accept, handle)
        except RuntimeError:  # no event loop behind this thread, or it has finished
            self._drop(handle, f"scheduler {self._phase}, added from a thread")
            raise SchedulerClosedError(
                "the lightwork scheduler is not running: start it first (the app's lifespan "
                "does, or `async with scheduler`)"
            ) from None
        if error is not None:
            raise error

    def _start_on_first_use(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bind(loop)
        self._phase = "running"
        log.logger.warning(
            log.SCHEDULER_STARTED,
            lifespan=False,
            hint="started on first use: run the app's lifespan (`with TestClient(app)` in "
            "tests, or `async with scheduler`) so that tasks are drained, not cancelled, "
            "when the event loop ends",
        )

    def _release(self, handle: TaskHandle[Any]) -> None:
        """Start a task whose request has ended, or drop it if the scheduler has closed."""
        if self._shut():
            self._drop(handle, f"scheduler {self._phase} before the response was sent")
        else:
            self._accept(handle, may_raise=False)

    def _start(self, handle: TaskHandle[Any], may_raise: bool = False) -> None:
        if self._handed_over:
            self._handed_over.discard(handle)
        if handle.state is not PENDING:  # cancelled before it could start
            return
        if self._phase == "closed":
            self._drop(handle, "the scheduler closed before the task could start")
            return
        admission = self._admission
        if admission is not None and (handle._flags & RESERVED or not self._unlimited(handle)):
            if not handle._flags & RESERVED and not admission.fits(handle.name):
                self._overflow(handle, may_raise)
                return
            if not admission.place(handle):  # queued
                return
        self._launch(handle)

    def _hold(self, handle: TaskHandle[Any]) -> None:
        """Keep room for a task its request holds until the response, or overflow it now.

        Now, in ``add_task``, while the request can still hear of it (``BackgroundQueueFull``,
        a 503), rather than after the response, when the task would be dropped.
        """
        admission = self._admission
        if (
            admission is None
            or admission.max_pending is None  # the queue takes every task: no room to keep
            or handle._flags & RESERVED  # add_task_wait was given it
            or self._unlimited(handle)
        ):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a sync endpoint's thread: the count is the loop's to keep
            self._call_on_loop(self._hold, handle)
            return
        if admission.fits(handle.name):
            admission.reserve(handle)
        else:
            self._overflow(handle, may_raise=True)

    def _call_on_loop(
        self, method: Callable[[TaskHandle[Any]], None], handle: TaskHandle[Any]
    ) -> None:
        """Call *method* on the scheduler's loop from another thread; raise what it raised."""
        try:
            error = anyio.from_thread.run_sync(self._on_loop, method, handle)
        except RuntimeError:  # not a worker thread of the loop: ask the loop and wait
            error = self._ask_loop(method, handle)
        if error is not None:
            raise error

    def _ask_loop(
        self, method: Callable[[TaskHandle[Any]], None], handle: TaskHandle[Any]
    ) -> Exception | None:
        """Call *method* on the scheduler's loop for a thread that is none of its workers.

        Waits as long as the loop runs, not forever: a loop that stops or closes before it
        gets to the call never will, so the task is dropped and the thread told. Returns
        what the call raised.
        """
        loop = self._loop
        answer: concurrent.futures.Future[Exception | None] = concurrent.futures.Future()

        def call() -> None:
            if answer.set_running_or_notify_cancel():  # the thread still waits for it
                answer.set_result(self._on_loop(method, handle))

        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(call)
            except RuntimeError:  # closed meanwhile
                pass
            else:
                while True:
                    try:
                        return answer.result(timeout=_ASK_LOOP_EVERY_S)
                    except TimeoutError:
                        if not loop.is_running() and answer.cancel():
                            break
        self._drop(handle, f"scheduler {self._phase}, added from a thread")
        raise SchedulerClosedError(
            "the lightwork scheduler is not running: add tasks while its event loop runs "
            "(a request's from its endpoint), or start the scheduler first"
        )

    @staticmethod
    def _on_loop(
        method: Callable[[TaskHandle[Any]], None], handle: TaskHandle[Any]
    ) -> Exception | None:
        """Call *method* on the loop for a thread, handing back what it raised."""
        try:
            method(handle)
        except Exception as exc:  # noqa: BLE001 -- raised again in the thread that added it
            return exc
        return None

    def _unlimited(self, handle: TaskHandle[Any]) -> bool:
        """Tell whether *handle* may run past the limits: an offload hand-off never waits.

        Queued behind the very work that fills the slots, or dropped with the queue at
        shutdown, a job would be late or lost; a hand-off only talks to the engine, within
        the offloader's ``call_timeout``.
        """
        return self._offloading or self.offloader.is_hand_off(handle._coro)

    def _overflow(self, handle: TaskHandle[Any], may_raise: bool) -> None:
        admission = self._admission
        assert admission is not None
        if admission.reserved:  # held by requests until their responses, or by add_task_wait
            reason = (
                f"the queue is full (max_pending={admission.max_pending}, with room kept "
                f"for {admission.reserved} tasks that start later)"
            )
        else:
            reason = f"the queue is full ({admission.max_pending} tasks waiting)"
        if self.overflow == "offload" and self._offload_instead(handle, reason):
            return
        self._drop(handle, reason)
        if may_raise and self.overflow != "drop":
            hint = (
                "`await add_task_wait(...)` waits for room"
                if self.overflow == "wait"
                else "try again later, or raise max_pending"
            )
            raise BackgroundQueueFull(f"task {handle.name!r} not accepted: {reason}; {hint}")

    def _offload_instead(self, handle: TaskHandle[Any], reason: str) -> bool:
        """Hand an unstarted task of an ``@offloadable`` function to the bridge, if it is one."""
        if handle._job is None or handle.state is not PENDING:
            return False
        self._offloading = True
        try:
            error = self.offloader.take_over(self, handle, reason)
        except Exception as exc:  # noqa: BLE001 -- e.g. arguments that JSON cannot carry
            log.logger.warning(log.TASK_OFFLOAD_REFUSED, **task_fields(handle), reason=str(exc))
            return False
        finally:
            self._offloading = False
        self._close_unstarted(handle, TaskState.OFFLOADED, reason, error)
        return True

    def _start_queued(self) -> None:
        """Fill the slot a task just freed from the queue, and hand the room on to waiters."""
        admission = self._admission
        assert admission is not None
        while (handle := admission.next_startable()) is not None:
            admission.take_slot(handle.name)
            handle._flags |= HOLDS_SLOT
            self._launch(handle)
        if admission.waiters:
            admission.make_room()

    def _launch(self, handle: TaskHandle[Any]) -> None:
        loop = self._loop
        assert loop is not None
        handle.state = RUNNING
        self._running.add(handle)
        # Timed from its first step, so that a burst's wait for the loop does not count.
        driver = launch(handle, self.time_steps)
        if loop.get_task_factory() is None:
            # What create_task() makes without a factory, made here: 1,900 fewer instructions
            # a task on uvloop, whose create_task() parses its keywords, then names the task
            # by a method call.
            task: asyncio.Task[Any] = _Task(
                driver, loop=loop, name=handle.name, context=handle._context
            )
        else:  # an eager task factory (3.12+), or the app's own
            task = loop.create_task(driver, name=handle.name, context=handle._context)
        if handle.state is RUNNING:  # an eager task factory (3.12+) may have ended it already
            handle._task = task

    def _loop_for_waiting(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the scheduler has no event loop yet: it was never started")
        return self._loop

    def _thread_limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # a task started before the scheduler bound to a loop
            self._limiter = anyio.CapacityLimiter(self.max_threads)
        return self._limiter
