"""A thread of one's own for a blocking client that is not thread-safe (Celery's, sqlite3's)."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

P = ParamSpec("P")
T = TypeVar("T")


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
