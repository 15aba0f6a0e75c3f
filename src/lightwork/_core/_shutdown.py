"""Shutdown: drain the running tasks, settle the queued ones, cancel and report what is left.

``Shutdown`` is the part of the scheduler that runs once, in ``aclose()``, on top of the
``Lifecycle`` every task goes through; the ``Scheduler`` adds admission and the public face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from . import _logging as log
from ._awaiting import close_scheduler
from ._lifecycle import Lifecycle
from ._reporting import report_abandoned, report_abandoned_callback

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine

    from ._handle import TaskHandle
    from ._ports import OffloadPort
    from ._watchdog import LoopWatchdog

CANCEL_GRACE_S = 1.0  # not Final, which mypyc would compile in: tests shorten it
"""How long shutdown waits for cancelled tasks to unwind before reporting them abandoned."""

PendingAtShutdown: TypeAlias = Literal["run", "drop", "spill"]
"""What shutdown does with queued tasks that have not started: ``"run"`` them as slots
free up, until ``drain_timeout``; ``"drop"`` them (each logged as dropped); or ``"spill"``
them to the offload bridge (tasks of ``@offloadable`` functions; the rest are dropped)."""


class Shutdown(Lifecycle):
    """Draining and closing a scheduler; mixed into ``Scheduler``."""

    _phase: str
    _handed_over: set[TaskHandle[Any]]
    drain_timeout: float
    shield_timeout: float
    pending_at_shutdown: PendingAtShutdown
    watchdog: LoopWatchdog | None
    offloader: OffloadPort

    def counts(self) -> dict[str, int]:
        raise NotImplementedError

    def _offload_instead(self, handle: TaskHandle[Any], reason: str) -> bool:
        raise NotImplementedError

    def aclose(self) -> Coroutine[Any, Any, None]:
        """Stop accepting tasks, wait up to ``drain_timeout`` for running ones, cancel the rest.

        Queued tasks run as slots free up, are dropped, or are spilled to the offload bridge
        (``pending_at_shutdown``); those still queued at the drain deadline are dropped.
        Every task still running then is cancelled (``reason="shutdown"``), but for
        ``shield=True`` ones, which get until ``shield_timeout``. A task that does not unwind
        within a second of its cancellation is logged as ``background_task_abandoned``.
        Ends with one ``background_scheduler_closed`` event that counts each terminal state.
        """
        return close_scheduler(self, CANCEL_GRACE_S)

    # The steps of ``close_scheduler``, which does the waiting between them.

    def _begin_close(self) -> bool:
        if self._phase in ("idle", "closed"):
            self._phase = "closed"
            return False
        self._phase = "closing"
        if self.pending_at_shutdown == "drop":
            self._drop_queued("shutdown began (pending_at_shutdown='drop')")
        elif self.pending_at_shutdown == "spill":
            self._spill_queued()
        return True

    def _still_running(self, *, shielded_only: bool) -> set[asyncio.Future[Any]] | None:
        """What is left to wait for; ``None``: tasks handed over by other threads, to start."""
        if self._handed_over and not shielded_only:
            return None
        pending: set[asyncio.Future[Any]] = {
            h._task for h in self._running if h._task and (h.shield or not shielded_only)
        }
        if not shielded_only:
            pending |= self._callbacks
        return pending

    def _at_drain_deadline(self) -> bool:
        """Drop what is queued, cancel what runs unshielded; tell whether shielded tasks run."""
        self._drop_queued("the shutdown's drain deadline passed before it could start")
        self._cancel_running("shutdown", keep_shielded=True)
        return any(h.shield for h in self._running)

    def _cancel_shielded(self) -> None:
        self._cancel_running("shutdown", keep_shielded=False)

    def _report_left(self) -> None:
        for handle in self._running:
            report_abandoned(handle)
        for callback in self._callbacks:
            report_abandoned_callback(callback.get_name())
        self._phase = "closed"
        if self.watchdog is not None:
            self.watchdog.stop()

    def _closed(self) -> None:
        log.logger.info(log.SCHEDULER_CLOSED, **self.counts())

    def _spill_queued(self) -> None:
        if self._admission is not None:
            reason = "shutdown began (pending_at_shutdown='spill')"
            for handle in list(self._admission.queue):
                if not self._offload_instead(handle, reason):
                    why = (
                        "the offload bridge refused it"  # and said why, in a warning
                        if handle._job is not None
                        else "not an @offloadable function's task"
                    )
                    self._drop(handle, f"{reason}; {why}")

    def _drop_queued(self, reason: str) -> None:
        if self._admission is not None:
            for handle in list(self._admission.queue):
                self._drop(handle, reason)

    def _cancel_running(self, reason: str, *, keep_shielded: bool) -> None:
        for handle in list(self._running):
            if not (keep_shielded and handle.shield):
                self._cancel(handle, reason)
        if not keep_shielded or not any(h.shield for h in self._running):
            for callback in self._callbacks:
                callback.cancel()
