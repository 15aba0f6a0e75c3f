"""How a task's coroutine is driven: its first step, its end, and optionally each step's time.

Compiled, a task's asyncio coroutine is ``drive``, which awaits the task's coroutine and
ends its handle: a coroutine compiled by mypyc finishes through its ``am_send`` slot, and
awaits through ``PyIter_Send``, so a task ends without a ``StopIteration`` (and without the
traceback entry mypyc would make for it). As plain Python, ``TrackedCoroutine`` does the same
work without a wrapper coroutine frame (asyncio drives it like any coroutine, through the
same methods).

``TimedCoroutine`` also times every step: a task that awaits a slow API is
slow but harmless, one that computes inside a coroutine holds the event loop. That is
exact per task, and costs two clock reads per step; the loop watchdog's sampling tells the
same without a cost per step, for steps past a threshold only.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import types
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast, final

from ._awaiting import adopt_driver
from ._handle import TaskHandle

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator
    from types import TracebackType

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
    if isinstance(driver, TrackedCoroutine):
        return driver._handle
    return driven_handle(driver) if type(driver) is adopted.driver else None


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


async def drive(handle: TaskHandle[Any], coro: Coroutine[Any, Any, Any]) -> None:
    """Run *handle*'s task: start its clock, await its coroutine, end it. Compiled only.

    A task's exception is reported by lightwork, so the asyncio task itself ends quietly
    with ``None``. What asyncio throws in (a cancellation, a failed future's error) does not
    come here: see ``launch``.
    """
    scheduler = handle._scheduler
    scheduler._on_first_step(handle, _clock())
    scheduler._arm_soon(handle)  # no code of this coroutine runs between that step and its wait
    try:
        result = await coro
    except BaseException as exc:
        handle._scheduler._on_end(handle, exc, None, _clock())
        if isinstance(exc, Exception):  # reported once, by lightwork; asyncio need not
            return
        raise  # cancellation, KeyboardInterrupt, SystemExit: never swallowed
    handle._scheduler._on_end(handle, None, result, _clock())


_DRIVE_COMPILED: Final = not isinstance(drive, types.FunctionType)


@final
class Adopted:
    """The class of compiled ``drive`` coroutines, once ``launch`` has made it lightwork's."""

    __slots__ = ("driver",)

    def __init__(self) -> None:
        self.driver: type | None = None


adopted: Final = Adopted()


def launch(handle: TaskHandle[Any], timed: bool) -> Coroutine[Any, Any, Any]:
    """Make the coroutine that asyncio runs as *handle*'s task.

    Compiled, ``drive``. Where a compiled coroutine awaits, mypyc forwards what is thrown
    into it with ``throw(type, value, traceback)``, the form Python 3.12 deprecates; so the
    class of ``drive``'s coroutines gets a ``throw()`` of lightwork's (``throw_into``), which
    asyncio calls by name: it throws into the task's coroutine itself, with one argument.
    As plain Python, or with each step timed, a slotted driver instead.
    """
    coro = handle._coro
    assert coro is not None
    if timed:
        return cast("Coroutine[Any, Any, Any]", TimedCoroutine(coro, handle))
    if not _DRIVE_COMPILED:  # an interpreted coroutine cannot take a throw before it starts
        return cast("Coroutine[Any, Any, Any]", TrackedCoroutine(coro, handle))
    driver = drive(handle, coro)
    if type(driver) is not adopted.driver:  # the first task
        adopt_driver(type(driver), throw_into, close_driven)
        adopted.driver = type(driver)
    return driver


def driven_handle(driver: object) -> TaskHandle[Any] | None:
    """The handle that a compiled ``drive`` coroutine drives, among the objects it holds.

    A compiled coroutine's locals cannot be read from outside; the collector's view of what
    it references can. Only asked for on a throw, or for ``running_handle()``.
    """
    for held in gc.get_referents(driver):
        if isinstance(held, TaskHandle):
            return held
    return None


def throw_into(
    driver: object,
    typ: type[BaseException] | BaseException,
    val: BaseException | object = None,
    tb: TracebackType | None = None,
) -> Any:
    """``throw()`` of a compiled ``drive`` coroutine: throw into its task's own coroutine.

    The driver stays where it waits, inside its ``await``: if the coroutine goes on, the
    driver's next step goes on with it; if it ends, its task ends here.
    """
    handle = driven_handle(driver)
    assert handle is not None
    error = thrown_exception(typ, val, tb)
    coro = handle._coro
    if coro is None:  # the task has ended: as a finished coroutine would
        raise error
    if handle._started_at == 0.0:  # thrown in before its first step (cancelled at once)
        handle._scheduler._on_first_step(handle, _clock())
    try:
        return coro.throw(error)
    except _StopIteration as stop:
        handle._scheduler._on_end(handle, None, stop.value, _clock())
    except BaseException as exc:
        handle._scheduler._on_end(handle, exc, None, _clock())
        if not isinstance(exc, Exception):
            raise
    raise StopIteration  # the asyncio task ends, quietly


def close_driven(driver: object) -> None:
    """``close()`` of a compiled ``drive`` coroutine: close its task's own coroutine."""
    handle = driven_handle(driver)
    if handle is not None and handle._coro is not None:
        handle._coro.close()


def thrown_exception(
    typ: type[BaseException] | BaseException, val: BaseException | object, tb: TracebackType | None
) -> type[BaseException] | BaseException:
    """What ``throw()`` was given, as its one-argument form."""
    if val is None and tb is None:
        return typ
    error = val if isinstance(val, BaseException) else typ(val)  # type: ignore[operator]
    return error.with_traceback(tb)


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
        self._thrown = thrown_exception(typ, val, tb)
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
