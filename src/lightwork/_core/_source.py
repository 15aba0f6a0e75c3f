"""``add_task``: its two call forms, their typing, and the checks that run at the call site."""

from __future__ import annotations

import functools
import inspect
import reprlib
from contextvars import copy_context
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

from mypy_extensions import trait

from ._awaiting import add_when_room, await_task, run_inline
from ._definitions import facts_of, facts_of_coroutine
from ._exceptions import BackgroundQueueFull
from ._handle import TaskHandle, TaskOwner
from ._lifecycle import observers
from ._options import (
    NO_OPTIONS,
    OPTION_NAMES,
    UNSET,
    TaskOptions,
    _Unset,
    check_callback,
    check_duration,
    check_flag,
    check_name,
    check_run_if,
)
from ._threads import run_in_thread

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

    import anyio

    from ._admission import Admission
    from ._ports import OffloadPort
    from ._stats import TaskStats
    from ._types import RunIf

P = ParamSpec("P")
T = TypeVar("T")

# Bound once: compiled, a builtin or an imported name used in a function is looked up in a
# dict at every use, and a Final is a C static.
_callable: Final = callable
_copy_context: Final = copy_context
_CoroutineType: Final = CoroutineType

_args_repr = reprlib.Repr()
_args_repr.maxlevel, _args_repr.maxstring, _args_repr.maxother = 3, 60, 60


@trait
class SourceOwner(TaskOwner):
    """What ``add_task`` asks of the scheduler behind a source (``Scheduler`` is one)."""

    timeout: float | None
    slow_threshold: float | None
    block_threshold: float | None
    log_args: bool
    offloader: OffloadPort
    _phase: str
    _admission: Admission | None
    _stats: TaskStats
    _keeps_call: Callable[[object], bool] | None

    def _check_open(self) -> None:
        raise NotImplementedError

    def _drop(self, handle: TaskHandle[Any], reason: str) -> None:
        raise NotImplementedError

    def _thread_limiter(self) -> anyio.CapacityLimiter:
        raise NotImplementedError


@trait  # a mixin, to mypyc: Scheduler also derives from Shutdown
class TaskSource:
    """Anything ``add_task`` can be called on: a request's ``Background`` or a ``Scheduler``."""

    __slots__ = ()

    @property
    def _scheduler(self) -> SourceOwner:
        raise NotImplementedError

    def _accept(self, handle: TaskHandle[Any]) -> None:
        raise NotImplementedError

    @overload
    def add_task(
        self,
        coro: Coroutine[Any, Any, T],
        /,
        *,
        name: str | None = None,
        timeout: float | _Unset | None = UNSET,
        slow_threshold: float | _Unset | None = UNSET,
        block_threshold: float | _Unset | None = UNSET,
        on_complete: Callable[[T], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        run_if: RunIf | None = None,
        shield: bool | None = None,
    ) -> TaskHandle[T]: ...
    @overload
    def add_task(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...
    @overload
    def add_task(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...
    def add_task(
        self,
        target: Any,
        /,
        *args: Any,
        name: Any = UNSET,
        timeout: Any = UNSET,
        slow_threshold: Any = UNSET,
        block_threshold: Any = UNSET,
        on_complete: Any = UNSET,
        on_error: Any = UNSET,
        run_if: Any = UNSET,
        shield: Any = UNSET,
        **kwargs: Any,
    ) -> TaskHandle[Any]:
        """Run a task in the background and return its handle at once.

        Two forms:

        - ``add_task(fn, *args, **kwargs)``, as in Starlette: every argument goes to ``fn``.
          An async ``fn`` runs on the event loop; a sync one in lightwork's worker threads.
        - ``add_task(coro, *, name=, timeout=, slow_threshold=, block_threshold=,
          on_complete=, on_error=, run_if=, shield=)``, with a coroutine object: the keywords are
          lightwork's options, so they never collide with the task's own arguments.

        Args:
            target: an async or sync callable, or a coroutine object.
            *args: positional arguments for a callable ``target``.
            name: the task's name in logs and metrics (default: the function's qualified
                name). This and the seven options below are a callable ``target``'s own
                keyword arguments when it is one; lightwork's options for a coroutine.
            timeout: seconds before the task is cancelled; ``None`` for no limit.
            slow_threshold: seconds after which the task is reported slow; ``None`` for never.
            block_threshold: seconds one step may hold the event loop before the task is
                reported as blocking it; ``None`` to never report.
            on_complete: called with the result when the task completes (sync or async).
            on_error: called with what ended the task otherwise (sync or async).
            run_if: which requests release the task (see ``RunIf``).
            shield: let the task run past the shutdown's ``drain_timeout``.
            **kwargs: keyword arguments for a callable ``target``.

        Returns:
            The task's handle; ``await`` it for the outcome, or ignore it.

        Raises:
            TypeError: *target* is neither callable nor a coroutine, or an option is unknown
                or of the wrong type. A rejected coroutine is closed, so it warns of nothing.
            BackgroundQueueFull: under the scheduler's limits, the task has no room and
                ``overflow`` is ``"reject"`` or ``"wait"`` (or ``"offload"``, for a task that
                cannot be offloaded). A request's task finds out here, in the handler.
            SchedulerClosedError: the app is shutting down.

        Example:
            ```python
            background.add_task(send_email, "ada@example.com", subject="Welcome")
            background.add_task(send_email("ada@example.com"), name="welcome", timeout=5)
            ```
        """
        handle = self._new_task(
            target, args, kwargs, name, timeout, slow_threshold, block_threshold,
            on_complete, on_error, run_if, shield,
        )  # fmt: skip
        self._accept(handle)
        return handle

    def _new_task(
        self,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: Any,
        timeout: Any,
        slow_threshold: Any,
        block_threshold: Any,
        on_complete: Any,
        on_error: Any,
        run_if: Any,
        shield: Any,
    ) -> TaskHandle[Any]:
        """Check an ``add_task`` call and make its task's handle, not yet accepted.

        The options arrive as parameters of their own (``UNSET`` when not passed), not in
        ``kwargs``: compiled, ``add_task`` parses a keyword parameter into a C variable,
        where an option in ``**kwargs`` was put in a new dict, then read back out of it
        (1,400 instructions a call with three options; a call with none pays 570 more, to
        parse the eight it was not given).
        """
        scheduler = self._scheduler
        if isinstance(target, _CoroutineType):
            try:
                if scheduler._phase != "running":  # so that the common case pays one test
                    scheduler._check_open()
                if args:
                    raise TypeError(
                        "add_task() takes no positional arguments after a coroutine object; "
                        "pass them when calling the coroutine function"
                    )
                if kwargs:
                    raise TypeError(_unknown_options(kwargs))
                _, definition, default_name = facts_of_coroutine(target)
                handle = _with_options(
                    scheduler, target, definition or NO_OPTIONS, default_name, name, timeout,
                    slow_threshold, block_threshold, on_complete, on_error, run_if, shield,
                )  # fmt: skip
            except BaseException:
                target.close()
                raise
            if scheduler.log_args and target.cr_frame is not None:
                # Any: on 3.13 f_locals is a FrameLocalsProxy, which compiled code typed by
                # typeshed's ``dict`` would refuse.
                frame: Any = target.cr_frame
                handle._args = _args_repr.repr(dict(frame.f_locals))
        elif _callable(target):
            if scheduler._phase != "running":
                scheduler._check_open()
            if not (
                name is UNSET
                and timeout is UNSET
                and slow_threshold is UNSET
                and block_threshold is UNSET
                and on_complete is UNSET
                and on_error is UNSET
                and run_if is UNSET
                and shield is UNSET
            ):  # the function's own keyword arguments, caught by the options' names
                kwargs = _given_back(
                    kwargs, (name, timeout, slow_threshold, block_threshold, on_complete,
                             on_error, run_if, shield),
                )  # fmt: skip
            handle = _from_callable(scheduler, target, args, kwargs)
        else:
            raise TypeError(_not_a_task(target))
        scheduler._stats.added(handle)
        if observers:
            for observer in tuple(observers):  # one may remove itself as it is told
                observer.task_added(handle)
        return handle

    @overload
    def add_task_wait(
        self,
        coro: Coroutine[Any, Any, T],
        /,
        *,
        name: str | None = None,
        timeout: float | _Unset | None = UNSET,
        slow_threshold: float | _Unset | None = UNSET,
        block_threshold: float | _Unset | None = UNSET,
        on_complete: Callable[[T], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        run_if: RunIf | None = None,
        shield: bool | None = None,
    ) -> Coroutine[Any, Any, TaskHandle[T]]: ...
    @overload
    def add_task_wait(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, TaskHandle[T]]: ...
    @overload
    def add_task_wait(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, TaskHandle[T]]: ...
    def add_task_wait(
        self, target: Any, /, *args: Any, **kwargs: Any
    ) -> Coroutine[Any, Any, TaskHandle[Any]]:
        """Like ``add_task``, but first wait for room: a slot or a place in the queue.

        For back-pressure: a handler that adds work faster than it drains waits here instead
        of failing with ``BackgroundQueueFull``. Without ``max_pending`` it never waits.
        Callers get the room in the order they came.

        Raises:
            BackgroundQueueFull: the task would wait for its request's response, and the
                room could only come from tasks that wait for this request's end, or for the
                end of other requests waiting here: it could not come while the handler
                waits.

        Example:
            ```python
            await background.add_task_wait(send_receipt, order_id)
            ```
        """
        options = [kwargs.pop(option, UNSET) for option in OPTION_NAMES]  # as add_task's
        new_task = functools.partial(self._new_task, target, args, kwargs, *options)
        return add_when_room(self, new_task)

    # The steps of ``add_when_room``, which does the waiting between them.

    def _line_up(
        self, new_task: Callable[[], TaskHandle[Any]]
    ) -> tuple[TaskHandle[Any], asyncio.Future[None] | None]:
        """Add the task if there is room; else make it, and give the room to wait for."""
        handle = new_task()
        admission = self._scheduler._admission
        if admission is None:
            self._accept(handle)
            return handle, None
        try:
            room = admission.line_up(handle, held=self._held_tasks)
        except BackgroundQueueFull as exc:
            self._scheduler._drop(handle, str(exc))
            raise
        if room is None:
            self._accept(handle)
        return handle, room

    def _leave_line(self, handle: TaskHandle[Any], room: asyncio.Future[None]) -> None:
        """The caller was cancelled while it waited: its task ends, cancelled, unstarted."""
        admission = self._scheduler._admission
        if admission is not None:
            admission.leave_line(room)
        self._scheduler._cancel(handle, "add_task_wait was cancelled while it waited")

    @property
    def _held_tasks(self) -> Sequence[TaskHandle[Any]] | None:
        """The tasks held until this source's end, if tasks added now are held too."""
        return None


def _from_callable(
    scheduler: SourceOwner, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TaskHandle[Any]:
    is_async, definition, name = facts_of(fn)
    coro: Coroutine[Any, Any, Any]
    if is_async:
        awaitable = fn(*args, **kwargs)
        coro = awaitable if isinstance(awaitable, _CoroutineType) else await_task(fn, awaitable)
    elif definition is not None and definition.inline:
        coro = run_inline(fn, args, kwargs)
    else:
        coro = run_in_thread(fn, args, kwargs, scheduler._thread_limiter)
    handle = _new_handle(scheduler, coro, definition, name)
    keeps_call = scheduler._keeps_call
    if keeps_call is not None and keeps_call(fn):  # to hand over at overflow or shutdown
        handle._job = (fn, args, kwargs)
    if scheduler.log_args:
        handle._args = _args_repr.repr((args, kwargs))
    return handle


def _new_handle(
    scheduler: SourceOwner,
    coro: Coroutine[Any, Any, Any],
    definition: TaskOptions | None,
    default_name: str,
) -> TaskHandle[Any]:
    """Make the handle of a function's task: each option the definition's, else the scheduler's."""
    if definition is None:
        return TaskHandle(
            scheduler, default_name, coro, _copy_context(), scheduler.timeout,
            scheduler.slow_threshold, scheduler.block_threshold,
            None, None, None, False,  # noqa: FBT003
        )  # fmt: skip
    return _with_options(
        scheduler, coro, definition, default_name,
        UNSET, UNSET, UNSET, UNSET, UNSET, UNSET, UNSET, UNSET,
    )  # fmt: skip


def _with_options(
    scheduler: SourceOwner,
    coro: Coroutine[Any, Any, Any],
    definition: TaskOptions,
    default_name: str,
    name: Any,
    timeout: Any,
    slow: Any,
    block: Any,
    on_complete: Any,
    on_error: Any,
    run_if: Any,
    shield: Any,
) -> TaskHandle[Any]:
    """Make the handle: each option the call's (checked here), else the definition's.

    An option the call did not pass is ``UNSET``. ``None`` means no limit for the three
    durations, and leaves the other options to the definition.
    """
    timeout = _duration("timeout", timeout, definition.timeout)
    slow = _duration("slow_threshold", slow, definition.slow_threshold)
    block = _duration("block_threshold", block, definition.block_threshold)
    on_complete = _callback("on_complete", on_complete, definition.on_complete)
    on_error = _callback("on_error", on_error, definition.on_error)
    if name is UNSET or name is None:
        name = definition.name
    else:
        check_name(name)
    if run_if is UNSET or run_if is None:
        run_if = definition.run_if
    else:
        check_run_if(run_if)
    if shield is UNSET or shield is None:
        shield = definition.shield
    else:
        check_flag("shield", shield)
    return TaskHandle(
        scheduler,
        name or default_name,
        coro,
        _copy_context(),
        scheduler.timeout if timeout is UNSET else timeout,
        scheduler.slow_threshold if slow is UNSET else slow,
        scheduler.block_threshold if block is UNSET else block,
        on_complete,
        on_error,
        run_if,
        bool(shield),
    )


def _duration(option: str, value: Any, defined: float | _Unset | None) -> Any:
    """The call's *value* for a duration, checked (``None``: no limit), else the definition's."""
    if value is UNSET:
        return defined
    check_duration(option, value)
    return value


def _callback(option: str, value: Any, defined: Callable[..., object] | None) -> Any:
    """The call's callback, checked, else (not passed, or ``None``) the definition's."""
    if value is UNSET or value is None:
        return defined
    check_callback(option, value)
    return value


def _given_back(kwargs: dict[str, Any], options: tuple[Any, ...]) -> dict[str, Any]:
    """A function's keyword arguments, with those that ``add_task``'s option names caught."""
    caught = zip(OPTION_NAMES, options, strict=True)
    return {**kwargs, **{name: value for name, value in caught if value is not UNSET}}


def _unknown_options(options: dict[str, Any]) -> str:
    unknown = ", ".join(map(repr, sorted(options.keys() - set(OPTION_NAMES))))
    return (
        f"add_task() got unknown option(s) {unknown}; after a coroutine object the keywords "
        f"are lightwork's options ({', '.join(OPTION_NAMES)}): pass the task's own "
        "arguments to its function"
    )


def _not_a_task(target: object) -> str:
    hint = (
        "pass a coroutine object (`add_task(fn(...))`) or the async function"
        if inspect.isawaitable(target)
        else "did you call the function instead of passing it? Use `add_task(fn, *args)`"
    )
    return (
        f"add_task() needs a function or a coroutine object, not {target!r} "
        f"({type(target).__name__}): {hint}"
    )
