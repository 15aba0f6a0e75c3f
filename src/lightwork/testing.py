"""Helpers for testing an app's background tasks; the pytest fixture ``lightwork_tasks`` uses them.

Example:
    ```python
    def test_signup_sends_email(client: TestClient, lightwork_tasks: TaskRecorder) -> None:
        client.post("/signup", json={"address": "ada@example.com"})
        lightwork_tasks.wait()
        assert lightwork_tasks.names() == ["welcome-email"]
        assert lightwork_tasks.tasks[0].state is TaskState.COMPLETED
    ```
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from ._core._lifecycle import observers

if TYPE_CHECKING:
    from types import TracebackType

    from ._core._handle import TaskHandle, TaskState

__all__ = ["TaskRecorder"]


class TaskRecorder:
    """Record every task any scheduler accepts while the recorder is active.

    Use it as a context manager (the ``lightwork_tasks`` fixture does). It is thread-safe,
    so a test can ``wait()`` for tasks that run on ``TestClient``'s event loop thread, or
    ``await join()`` for tasks on its own loop.
    """

    def __init__(self) -> None:
        self.tasks: list[TaskHandle[Any]] = []
        """Every task added while recording, in the order they were added."""
        # The recorded tasks not ended yet: a task added before recording began is not one.
        self._unfinished: set[TaskHandle[Any]] = set()
        self._changed = threading.Condition()
        self._joining: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def __repr__(self) -> str:
        return f"<TaskRecorder tasks={len(self.tasks)} unfinished={len(self._unfinished)}>"

    def __enter__(self) -> TaskRecorder:
        observers.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        observers.remove(self)

    def task_added(self, handle: TaskHandle[Any], /) -> None:
        """Note a new task (called by the scheduler)."""
        with self._changed:
            self.tasks.append(handle)
            self._unfinished.add(handle)

    def task_started(self, handle: TaskHandle[Any], /) -> None:
        """Note that a task began running (called by the scheduler)."""

    def task_ended(self, handle: TaskHandle[Any], /) -> None:
        """Note a task's end (called by the scheduler)."""
        with self._changed:
            if handle not in self._unfinished:
                return
            self._unfinished.discard(handle)
            self._changed.notify_all()
            for loop, ended in self._joining:
                loop.call_soon_threadsafe(ended.set)

    def names(self, state: TaskState | None = None) -> list[str]:
        """Return the names of the recorded tasks, optionally only those in *state*."""
        return [h.name for h in self.tasks if state is None or h.state is state]

    def in_state(self, state: TaskState) -> list[TaskHandle[Any]]:
        """Return the recorded tasks that are in *state*."""
        return [h for h in self.tasks if h.state is state]

    def wait(self, timeout: float = 5.0) -> None:
        """Block until every recorded task, and its callback, has ended.

        For tasks on another thread's event loop, such as ``TestClient``'s.

        Raises:
            TimeoutError: some task is still pending or running after *timeout* seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: not self._unfinished, timeout):
                raise TimeoutError(self._still_running(timeout))

    async def join(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 -- bounded by default
        """Wait until every recorded task, and its callback, has ended; on any event loop.

        Raises:
            TimeoutError: some task is still pending or running after *timeout* seconds.
        """
        ended = asyncio.Event()
        joining = (asyncio.get_running_loop(), ended)
        with self._changed:
            self._joining.append(joining)
        try:
            async with asyncio.timeout(timeout):
                while self._unfinished:
                    await ended.wait()
                    ended.clear()
        except TimeoutError:
            raise TimeoutError(self._still_running(timeout)) from None
        finally:
            with self._changed:
                self._joining.remove(joining)

    def _still_running(self, timeout: float) -> str:
        with self._changed:
            unfinished = [h for h in self.tasks if h in self._unfinished]
        names = ", ".join(
            f"{h!r} (its callback still runs)" if h.done() else repr(h) for h in unfinished
        )
        return f"background tasks still unfinished after {timeout}s: {names}"
