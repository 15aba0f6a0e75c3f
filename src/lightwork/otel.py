"""OpenTelemetry spans for background tasks, each a child of the request's span that added it.

Install with ``pip install 'lightwork[otel]'``. lightwork only uses the OpenTelemetry API:
the application sets up the SDK and its exporter, as for any instrumented library.

Example:
    ```python
    from lightwork.otel import TaskTracer

    TaskTracer().install()  # every scheduler's tasks, from now on
    ```

Each task that starts running gets a span named ``task <name>``, whose parent is the span
that was current where ``add_task`` was called (the request's server span, under an
instrumented app). The span is current inside the task, so spans the task's own code
makes (an instrumented HTTP client, a database driver) are its children. It ends with the
task, with these attributes:

- ``lightwork.task.name``, ``lightwork.task.id``, ``lightwork.task.state`` (the terminal
  state: ``completed``, ``failed``, ``timed_out``, ``cancelled`` or ``dropped``);
- ``lightwork.task.blocked_ms`` and ``lightwork.task.longest_step_ms``: how long the
  task held the event loop, in all and in its longest step;
- ``lightwork.task.route``: the request that added it, as ``"GET /signup"``, if any.

A completed task's span has status ``OK``; a failed or timed-out one ``ERROR`` (a failure
is recorded as an exception event); a cancelled one stays ``UNSET``. A task that ended
without running (dropped, or cancelled while pending) gets a span of no length, so that
it is not missing from the trace.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._core._exceptions import MissingDependencyError
from ._core._handle import TaskState
from ._core._lifecycle import observers
from ._version import __version__

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("lightwork.otel", "otel") from exc

if TYPE_CHECKING:
    from types import TracebackType

    from ._core._handle import TaskHandle

__all__ = ["TaskTracer"]


class TaskTracer:
    """Make an OpenTelemetry span for every background task of every scheduler, once installed.

    Use :meth:`install` at startup, or the tracer as a context manager (in tests).

    Args:
        tracer_provider: where spans go; the globally set provider by default.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("lightwork", __version__, tracer_provider)
        # Per task id: the parent context captured when it was added, then its span. Each
        # task's entries are touched from its own loop's thread only, so no lock is needed.
        self._parents: dict[int, otel_context.Context] = {}
        self._spans: dict[int, trace.Span] = {}
        self._installed = False

    def __repr__(self) -> str:
        return f"<TaskTracer installed={self._installed} open_spans={len(self._spans)}>"

    def install(self) -> None:
        """Start tracing tasks: those added from now on get a span."""
        self._installed = True
        if self not in observers:
            observers.append(self)

    def uninstall(self) -> None:
        """Stop tracing new tasks; the spans of tasks already traced still end with their tasks.

        So a tracer installed in the app's lifespan still ends the spans of the tasks that
        shutdown drains after the lifespan has finished.
        """
        self._installed = False
        self._leave_when_done()

    def _leave_when_done(self) -> None:
        if not (self._installed or self._parents or self._spans) and self in observers:
            observers.remove(self)

    def __enter__(self) -> TaskTracer:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.uninstall()

    def task_added(self, handle: TaskHandle[Any], /) -> None:
        """Note the span that was current where the task was added (called by the scheduler)."""
        if self._installed:
            self._parents[handle.id] = handle._context.run(otel_context.get_current)

    def task_started(self, handle: TaskHandle[Any], /) -> None:
        """Open the task's span and make it current inside the task (called by the scheduler)."""
        parent = self._parents.pop(handle.id, None)
        if parent is None:  # added before the tracer was installed
            return
        span = self._open(handle, parent)
        # Called inside the task's own context, before its code runs: its spans nest under this.
        otel_context.attach(trace.set_span_in_context(span, parent))
        self._spans[handle.id] = span

    def task_ended(self, handle: TaskHandle[Any], /) -> None:
        """Close the task's span with its outcome (called by the scheduler)."""
        span = self._spans.pop(handle.id, None)
        parent = self._parents.pop(handle.id, None)
        end_time = None
        if span is None:
            if parent is None:  # added before the tracer was installed
                return
            end_time = time.time_ns()  # ended without running: a span of no length
            span = self._open(handle, parent, end_time)
        span.set_attribute("lightwork.task.state", handle.state.value)
        span.set_attribute("lightwork.task.blocked_ms", round(handle.blocked * 1000, 3))
        span.set_attribute("lightwork.task.longest_step_ms", round(handle.longest_step * 1000, 3))
        if handle.state is TaskState.COMPLETED:
            span.set_status(trace.StatusCode.OK)
        elif handle.state in (TaskState.FAILED, TaskState.TIMED_OUT):
            error = handle.exception()
            assert error is not None
            if handle.state is TaskState.FAILED:
                span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
        span.end(end_time)
        if not self._installed:
            self._leave_when_done()

    def _open(
        self, handle: TaskHandle[Any], parent: otel_context.Context, start_time: int | None = None
    ) -> trace.Span:
        attributes: dict[str, str | int] = {
            "lightwork.task.name": handle.name,
            "lightwork.task.id": handle.id,
        }
        if handle.route is not None:
            attributes["lightwork.task.route"] = handle.route
        return self._tracer.start_span(
            f"task {handle.name}", context=parent, attributes=attributes, start_time=start_time
        )
