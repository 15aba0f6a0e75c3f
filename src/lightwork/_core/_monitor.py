"""How a task's coroutine is driven: its first step, its end, and optionally each step's time.

``TrackedCoroutine`` stands between asyncio and a task's coroutine without a wrapper
coroutine frame (asyncio drives it like any coroutine, through the same methods): it starts
the task's clock on the first step and ends its handle in the last one, so no done-callback
is registered and scheduled per task.

``TimedCoroutine`` also times every ``send``/``throw``: a task that awaits a slow API is
slow but harmless, one that computes inside a coroutine holds the event loop. That is
exact per task, and costs two clock reads per step; the loop watchdog's sampling tells the
same without a cost per step, for steps past a threshold only.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator
    from types import TracebackType

    from ._handle import TaskHandle

T = TypeVar("T")

# Bound once: compiled, a builtin named in a function is looked up among the builtins at
# every use, and an imported function in the module's dict; a Final is a C static.
_StopIteration: Final = StopIteration
_clock: Final = perf_counter


@final
class Stepping:
    """The task whose step runs on the event loop right now, read by the loop watchdog.

    Set by ``TimedCoroutine``, and around a task's sync callbacks (which run after its last
    step). An attribute of one object, not a module global: compiled, a global is an entry
    of the module's dict, and this is a slot, written at every timed step.
    """

    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: TaskHandle[Any] | None = None


stepping: Final = Stepping()

gc_seconds = 0.0
"""Seconds spent in garbage collection on event-loop threads, once ``count_gc_time()`` ran."""
collecting_since = 0.0
"""When the collection running now began (``perf_counter()``); 0.0 while none runs."""
last_collection = (0.0, 0.0)
"""When the last finished collection began and ended: the watchdog's thread, which waits for
the GIL a collection holds, may only look once it has ended."""
_loop_thread = threading.local()
"""Marks the threads that run an event loop (``counts``): a collection in another thread
pauses no task's step. Thread-local, not a set of thread ids, which new threads reuse."""
_worker_thread = threading.local()
"""The task whose sync function a worker thread runs (``handle``), for ``running_handle``."""


def running_handle() -> TaskHandle[Any] | None:
    """Return the lightwork task running here: the loop's current task, or a sync task's thread.

    Found from the task's driver, when asked: nothing is bound per task or per step for it.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        handle: TaskHandle[Any] | None = getattr(_worker_thread, "handle", None)
        return handle
    if task is None:
        return None
    driver = task.get_coro()
    return driver._handle if isinstance(driver, TrackedCoroutine) else None


def call_as(handle: TaskHandle[Any] | None, call: Callable[[], T]) -> T:
    """Call *call* in a worker thread as *handle*'s sync function, for ``running_handle``."""
    _worker_thread.handle = handle
    try:
        return call()
    finally:
        _worker_thread.handle = None


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global gc_seconds, collecting_since, last_collection  # noqa: PLW0603
    if not getattr(_loop_thread, "counts", False):
        return
    if phase == "start":
        collecting_since = _clock()
    elif collecting_since:
        end = _clock()
        gc_seconds += end - collecting_since
        last_collection = (collecting_since, end)
        collecting_since = 0.0


def count_gc_time() -> None:
    """Keep ``gc_seconds``, ``collecting_since`` and ``last_collection`` up to date.

    Under load a full collection can pause the loop for tens of milliseconds in the middle
    of any task's step; that pause is the collector's, not the task's. The step timer
    subtracts it, and the loop watchdog says when a stall is a collection. Called on the
    loop's thread: collections in other threads (a worker thread's) do not count.
    """
    _loop_thread.counts = True
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


class TrackedCoroutine:
    """Drive a task's coroutine: start its clock on the first step, end its handle in the last.

    A task's exception is reported by lightwork, so the asyncio task itself ends quietly
    with ``None``. A coroutine to asyncio by its four methods (``collections.abc.Coroutine``
    recognises them), not by deriving from it: compiled, a class with a Python base (an ABC,
    or ``Generic``) gets a ``__dict__`` and a ``__weakref__`` slot, 16 bytes a task.

    A step is ``__next__``: asyncio's task steps its coroutine with ``PyIter_Send(coro,
    None)``, which calls the type's ``tp_iternext`` slot when it has one, a C call with no
    arguments to parse, where ``send`` would be a method looked up and called with them
    (300 instructions a step, compiled). ``throw`` leaves its exception in ``_thrown`` for
    the step it then takes: the body of a step is one function, and one compiled frame for
    the ``StopIteration`` that ends a task to unwind through.
    """

    __slots__ = ("_coro", "_handle", "_thrown")

    def __init__(self, coro: Coroutine[Any, Any, Any], handle: TaskHandle[Any]) -> None:
        self._coro = coro
        self._handle = handle
        self._thrown: type[BaseException] | BaseException | None = None

    def send(self, value: object) -> Any:
        """Take a step; asyncio sends only ``None``, as every coroutine it drives is sent."""
        if value is not None:
            raise TypeError(f"a lightwork task's coroutine is sent None, not {value!r}")
        return self.__next__()

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        if val is not None or tb is not None:  # the old three-argument form
            error = val if isinstance(val, BaseException) else typ(val)  # type: ignore[operator]
            self._thrown = error.with_traceback(tb)
        else:
            self._thrown = typ
        return self.__next__()

    def __next__(self) -> Any:
        """Take a step: send ``None`` into the task's coroutine, or throw ``_thrown`` into it."""
        handle = self._handle
        first = handle._started_at == 0.0  # not `not ...`: compiled, that boxes the float
        if first:
            handle._scheduler._on_first_step(handle, _clock())
        error = self._thrown
        try:
            if error is None:
                result = self._coro.send(None)
            else:
                self._thrown = None
                result = self._coro.throw(error)
        except _StopIteration as stop:
            handle._scheduler._on_end(handle, None, stop.value, _clock())
            raise
        except BaseException as exc:
            handle._scheduler._on_end(handle, exc, None, _clock())
            if isinstance(exc, Exception):  # reported once, by lightwork; asyncio need not
                raise StopIteration from None
            raise  # cancellation, KeyboardInterrupt, SystemExit: never swallowed
        if first:
            handle._scheduler._on_first_wait(handle)
        return result

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()


class TimedCoroutine(TrackedCoroutine):
    """Drive a task's coroutine as ``TrackedCoroutine`` does, adding each step's time to it."""

    __slots__ = ()

    def __next__(self) -> Any:
        """Take a step, timed: the same as ``TrackedCoroutine.__next__``, with two clock reads."""
        handle = self._handle
        gc_before = gc_seconds
        start = _clock()
        first = handle._started_at == 0.0  # not `not ...`: compiled, that boxes the float
        if first:
            handle._scheduler._on_first_step(handle, start)
        error = self._thrown
        stepping.handle = handle  # written only on the loop thread
        try:
            if error is None:
                result = self._coro.send(None)
            else:
                self._thrown = None
                result = self._coro.throw(error)
        except _StopIteration as stop:
            handle._scheduler._on_end(handle, None, stop.value, self._account(start, gc_before))
            raise
        except BaseException as exc:
            handle._scheduler._on_end(handle, exc, None, self._account(start, gc_before))
            if isinstance(exc, Exception):  # reported once, by lightwork; asyncio need not
                raise StopIteration from None
            raise  # cancellation, KeyboardInterrupt, SystemExit: never swallowed
        self._account(start, gc_before)
        if first:
            handle._scheduler._on_first_wait(handle)
        return result

    def _account(self, start: float, gc_before: float) -> float:
        """Add the step that began at *start* to the task's time on the loop, minus GC.

        Return when the step ended.
        """
        stepping.handle = None
        handle = self._handle
        end = _clock()
        step = end - start - (gc_seconds - gc_before)
        blocked = handle.blocked
        handle.blocked = blocked + step if blocked else step  # one float for a one-step task
        if step > handle.longest_step:
            threshold = handle.block_threshold
            if threshold is not None and step >= threshold:  # may be news: the scheduler says
                handle._scheduler._on_longest_step(handle, step)
            else:
                handle.longest_step = step
        return end
