"""The loop watchdog: a thread that reports an event loop that stopped coming back.

A step timer learns of a block only once the step has ended; a step that never ends (an
infinite loop, a blocking call with no timeout) needs someone outside the loop to notice.
The loop beats a few times per threshold; the thread checks the beats, and while the loop
is still stuck it samples the loop thread's stack and says which task was running.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from . import _logging as log
from . import _monitor
from ._reporting import ms

if TYPE_CHECKING:
    from ._handle import TaskHandle

_STACK_LIMIT: Final = 30

requests: dict[asyncio.Task[Any], str] = {}
"""The request each running request task serves (``"GET /path"``), while a watchdog runs."""
watching = 0
"""How many watchdogs run: the middleware records ``requests`` only when one does."""


class LoopWatchdog:
    """Watch one event loop from a thread; report each time it is stuck past *threshold_s*."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self._interval = threshold_s / 4
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._last_beat = 0.0
        self._beat_timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "watching" if self._thread is not None else "stopped"
        return f"<LoopWatchdog {state} threshold={self.threshold_s}s>"

    def start(self) -> None:
        """Start beating on the running loop and watching it from a daemon thread."""
        global watching  # noqa: PLW0603
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="lightwork-watchdog", daemon=True)
        self._thread.start()
        watching += 1

    def stop(self) -> None:
        """Stop the beats and the thread."""
        global watching  # noqa: PLW0603
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._beat_timer is not None:
            self._beat_timer.cancel()
            self._beat_timer = None
        watching -= 1
        if not watching:
            requests.clear()

    def _beat(self) -> None:
        self._last_beat = perf_counter()
        assert self._loop is not None
        self._beat_timer = self._loop.call_later(self._interval, self._beat)

    def _watch(self) -> None:
        reported_beat = 0.0
        loop = self._loop
        assert loop is not None
        while not self._stop.wait(self._interval):
            if not loop.is_running():  # it ended without a shutdown to stop this thread
                return
            last_beat = self._last_beat
            stuck = perf_counter() - last_beat - self._interval  # past the beat it missed
            if stuck >= self.threshold_s and last_beat != reported_beat:
                reported_beat = last_beat  # once per stall
                self._report(stuck)

    def _report(self, stuck: float) -> None:
        # What the loop thread is doing, read first: formatting the stack lets it run on.
        now = perf_counter()
        handle: TaskHandle[Any] | None = _monitor.stepping
        if handle is not None and handle._scheduler._loop is not self._loop:
            handle = None  # a step on another loop, in another thread
        current = asyncio.current_task(self._loop) if handle is None else None
        collecting_since = _monitor.collecting_since
        began, ended = _monitor.last_collection
        frame = sys._current_frames().get(self._loop_thread)
        if collecting_since:
            in_gc = now - collecting_since
        else:  # a collection holds the GIL: this thread may only see a stall once it ended
            in_gc = max(ended - max(began, now - stuck), 0.0)
        stack = "".join(traceback.format_stack(frame, limit=_STACK_LIMIT)) if frame else ""
        culprit: dict[str, object]
        if handle is not None:
            culprit = {"task": handle.name, "task_id": handle.id, "route": handle.route}
        else:
            culprit = {"task": None, "route": requests.get(current) if current else None}
        log.logger.warning(
            log.LOOP_BLOCKED,
            stuck_ms=ms(stuck),
            threshold_ms=ms(self.threshold_s),
            gc_ms=ms(in_gc),
            **culprit,
            stack=stack,
            hint=log.GC_PAUSE_HINT if in_gc >= stuck / 2 else log.BLOCKING_HINT,
        )
