"""The core's coroutines: what the compiled modules await is awaited here (or in ``_threads``).

A coroutine compiled by mypyc forwards an exception thrown into it (a cancellation) to what
it awaits with ``throw(type, value, traceback)``, the form Python 3.12 deprecates, so each
cancellation would warn. The compiled modules therefore hold one coroutine only, the task driver,
whose ``throw()`` is lightwork's own (``adopt_driver``); their methods do the deciding,
synchronously, and return the future or the object to wait for; the few lines here do the
waiting. Whatever is compiled or not, this module stays plain Python.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

T = TypeVar("T")
H = TypeVar("H")
S = TypeVar("S", bound="Starts")


async def await_task(fn: object, awaitable: Any) -> Any:
    """Run a function marked async that returned an awaitable, not a coroutine."""
    if not inspect.isawaitable(awaitable):
        raise TypeError(f"{fn!r} is marked async but returned {awaitable!r}, not an awaitable")
    return await awaitable


async def run_inline(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run an ``inline=True`` sync function on the event loop, as a task's coroutine."""
    return fn(*args, **kwargs)


async def outcome(ended: asyncio.Future[None] | None, result: Callable[[], T]) -> T:
    """Wait for a task's end (if it has not ended), then return or raise its outcome."""
    if ended is not None:
        # Shielded, so that a cancelled awaiter does not cancel the future others share.
        await asyncio.shield(ended)
    return result()


async def await_callback(
    result: Awaitable[object], failed: Callable[[BaseException], None]
) -> None:
    """Await what an async callback returned; tell *failed* if it raised or was cancelled."""
    try:
        await result
    except asyncio.CancelledError as exc:
        failed(exc)
        raise
    except Exception as exc:  # noqa: BLE001 -- a user's callback: report, never propagate
        failed(exc)


async def then(awaitable: Awaitable[T], done: Callable[[], object]) -> T:
    """Await *awaitable*, then call *done*: not if it raised."""
    result = await awaitable
    done()
    return result


class WaitsForRoom(Protocol[H]):
    """A source of tasks whose ``add_task_wait`` waits for room (``TaskSource``)."""

    def _line_up(self, new_task: Callable[[], H]) -> tuple[H, asyncio.Future[None] | None]: ...
    def _leave_line(self, handle: H, room: asyncio.Future[None]) -> None: ...
    def _accept(self, handle: H) -> None: ...


async def add_when_room(source: WaitsForRoom[H], new_task: Callable[[], H]) -> H:
    """``add_task_wait``: make the task, wait in line for room if there is none, add it."""
    handle, room = source._line_up(new_task)
    if room is not None:
        try:
            await room
        except BaseException:
            source._leave_line(handle, room)
            raise
        source._accept(handle)
    return handle


class Bridge(Protocol):
    """The offload bridge, as a scheduler starts and closes it (``OffloadPort``)."""

    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


class Starts(Protocol):
    """A scheduler that ``start_scheduler`` starts (``Scheduler``)."""

    @property
    def offloader(self) -> Bridge: ...
    def _begin(self) -> None: ...


async def start_scheduler(scheduler: Starts) -> None:
    """``start``: bind to this loop and accept tasks, then start the offload bridge."""
    scheduler._begin()
    await scheduler.offloader.start()


async def enter_scheduler(scheduler: S) -> S:
    """``async with scheduler``: start it and give it."""
    await start_scheduler(scheduler)
    return scheduler


class Drains(Protocol):
    """A scheduler that ``close_scheduler`` shuts down (``Shutdown``)."""

    drain_timeout: float
    shield_timeout: float

    @property
    def offloader(self) -> Bridge: ...
    def _begin_close(self) -> bool: ...
    def _still_running(self, *, shielded_only: bool) -> set[asyncio.Future[Any]] | None: ...
    def _at_drain_deadline(self) -> bool: ...
    def _cancel_shielded(self) -> None: ...
    def _report_left(self) -> None: ...
    def _closed(self) -> None: ...


async def close_scheduler(scheduler: Drains, cancel_grace: float) -> None:
    """``aclose``: drain, cancel what is left when each deadline passes, close the bridge."""
    if not scheduler._begin_close():  # never started, or closed already
        await scheduler.offloader.aclose()
        return
    loop = asyncio.get_running_loop()
    began = loop.time()
    await _wait_all(scheduler, began + scheduler.drain_timeout, shielded_only=False)
    if scheduler._at_drain_deadline():  # shielded tasks run on, until their own deadline
        await _wait_all(scheduler, began + scheduler.shield_timeout, shielded_only=True)
        scheduler._cancel_shielded()
    await _wait_all(scheduler, loop.time() + cancel_grace, shielded_only=False)
    scheduler._report_left()
    await scheduler.offloader.aclose()  # after the drain: it delivered or kept every hand-off
    scheduler._closed()


async def _wait_all(scheduler: Drains, deadline: float, *, shielded_only: bool) -> None:
    loop = asyncio.get_running_loop()
    while True:  # async callbacks may add work while we wait: look again until none is left
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        pending = scheduler._still_running(shielded_only=shielded_only)
        if pending is None:
            await asyncio.sleep(0)  # let the tasks handed over by other threads start
        elif pending:
            await asyncio.wait(pending, timeout=remaining)
        else:
            return


def adopt_driver(
    cls: type,
    throw: Callable[
        [object, type[BaseException] | BaseException, object, TracebackType | None], Any
    ],
    close: Callable[[object], None],
) -> None:
    """Make *throw* and *close* the ``throw()`` and ``close()`` of *cls*'s coroutines.

    For the compiled task driver (``_monitor.launch`` says why). Methods defined here, in
    plain Python, as a compiled function set on a class is not bound to its instances.
    """

    def throw_method(
        driver: object,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        return throw(driver, typ, val, tb)

    def close_method(driver: object) -> None:
        close(driver)

    cls.throw = throw_method  # type: ignore[attr-defined]
    cls.close = close_method  # type: ignore[attr-defined]
