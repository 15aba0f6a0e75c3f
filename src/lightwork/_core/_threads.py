"""lightwork's threads: for sync tasks, and a thread of one's own for a blocking client.

Sync tasks run in anyio's worker threads, each holding a slot until its function returns; the
dedicated thread serves a client that is not thread-safe (Celery's, sqlite3's).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from ._definitions import name_of
from ._monitor import call_as, running_handle

if TYPE_CHECKING:
    from collections.abc import Callable

P = ParamSpec("P")
T = TypeVar("T")

_UNLIMITED: Final = anyio.CapacityLimiter(math.inf)
"""What ``run_sync`` borrows from, as it must borrow from one: the real limit is the slot."""


async def run_in_thread(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limiter: Callable[[], anyio.CapacityLimiter],
) -> Any:
    """Run a sync function in a worker thread, as a task's coroutine (``add_task(fn)``)."""
    call = functools.partial(call_as, running_handle(), functools.partial(fn, *args, **kwargs))
    result = await run_in_worker_thread(call, limiter())
    if inspect.iscoroutine(result):
        result.close()
        raise TypeError(
            f"{name_of(fn)} is a sync function that returned a coroutine: pass an async "
            "function (`async def`) or the coroutine object itself to add_task()"
        )
    return result


async def run_in_worker_thread(fn: Callable[[], T], limiter: anyio.CapacityLimiter) -> T:
    """Run ``fn()`` in a worker thread once one of *limiter*'s tokens is free; return its result.

    The token is held from before ``fn`` starts until it returns, even after its caller stops
    waiting (a timeout, a cancellation): a thread cannot be stopped, so it keeps its slot, and
    a hung call cannot make room for more. A caller that stops waiting for its turn leaves at
    once, and ``fn`` never runs.
    """
    slot = _ThreadSlot(limiter, asyncio.get_running_loop())
    await limiter.acquire_on_behalf_of(slot)
    try:
        return await anyio.to_thread.run_sync(
            slot.call,
            fn,
            limiter=_UNLIMITED,
            abandon_on_cancel=True,  # a thread cannot be stopped: on timeout, stop waiting for it
        )
    finally:
        slot.leave()


class _ThreadSlot:
    """One token of a limiter, handed back once by whichever sees the end of the call last.

    The caller hands it back if ``fn`` returned or never started; if the caller stopped
    waiting while ``fn`` ran, the thread does, through the loop, when ``fn`` returns.
    """

    __slots__ = ("_left", "_limiter", "_lock", "_loop", "_running")

    def __init__(self, limiter: anyio.CapacityLimiter, loop: asyncio.AbstractEventLoop) -> None:
        self._limiter = limiter
        self._loop = loop
        self._lock = threading.Lock()
        self._running = False
        self._left = False

    def __repr__(self) -> str:
        state = "running" if self._running else "starting"
        return f"<_ThreadSlot {state}{', abandoned' if self._left else ''}>"

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the worker thread, unless the caller has already left."""
        with self._lock:
            if self._left:  # its caller is gone, and what this raises with it
                raise asyncio.CancelledError
            self._running = True
        try:
            return fn()
        finally:
            self._returned()

    def _returned(self) -> None:
        """In the thread, once ``fn`` returns: hand the token back if the caller has left."""
        with self._lock:
            self._running = False
            if not self._left:
                return
        with contextlib.suppress(RuntimeError):  # a closed loop: its limiter is gone with it
            self._loop.call_soon_threadsafe(self._limiter.release_on_behalf_of, self)

    def leave(self) -> None:
        """Stop waiting, on the loop; hand the token back unless ``fn`` is still running."""
        with self._lock:
            self._left = True
            running = self._running
        if not running:
            self._limiter.release_on_behalf_of(self)


class DedicatedThread:
    """Runs blocking calls one at a time, in order, always on the same thread.

    A call that its caller stops waiting for (a timeout, a cancellation) still runs to its
    end on the thread: the client's own socket timeouts must bound it.
    """

    __slots__ = ("_executor", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def __repr__(self) -> str:
        return f"<DedicatedThread {self.name!r}>"

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the thread and block until it returns; for code off the event loop."""
        return self._executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        """Let queued calls finish, then end the thread; calls made afterwards raise."""
        self._executor.shutdown(wait=False)
