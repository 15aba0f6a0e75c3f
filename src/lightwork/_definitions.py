"""``@lightwork.task``: defaults attached to a function, found again from its coroutines."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import CodeType, CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar

from ._options import UNSET, TaskOptions, _Unset

if TYPE_CHECKING:
    from ._types import RunIf

F = TypeVar("F", bound=Callable[..., Any])

# Keyed by code object, so that both ``add_task(fn, ...)`` and ``add_task(fn(...))`` find the
# definition: a coroutine object knows its code (``cr_code``) but not its function.
_definitions: dict[CodeType, TaskOptions] = {}


def task(
    *,
    name: str | None = None,
    timeout: float | _Unset | None = UNSET,
    slow_threshold: float | _Unset | None = UNSET,
    block_threshold: float | _Unset | None = UNSET,
    on_complete: Callable[[Any], object] | None = None,
    on_error: Callable[[BaseException], object] | None = None,
    run_if: RunIf | None = None,
    shield: bool | None = None,
    inline: bool = False,
) -> Callable[[F], F]:
    """Give a function default options for every task made from it.

    Both forms of ``add_task`` pick the defaults up; options passed to ``add_task`` win.
    The function is returned unchanged, so it can still be called and tested directly.

    Args:
        name: the task's name in logs and metrics (default: the function's qualified name).
        timeout: seconds before the task is cancelled; ``None`` for no limit.
        slow_threshold: seconds after which the task is reported slow; ``None`` for never.
        block_threshold: seconds one step may hold the event loop before the task is
            reported as blocking it; ``None`` to never report (steps are still timed).
        on_complete: called with the result when the task completes (sync or async).
        on_error: called with what ended the task otherwise (sync or async).
        run_if: which requests release the task (see ``RunIf``).
        shield: let the task run past the shutdown's ``drain_timeout``, up to the
            scheduler's ``shield_timeout`` (e.g. a payment capture).
        inline: run a sync function on the event loop itself instead of in a worker
            thread: for very short work, where a thread costs more than the call. It is
            timed as one step, so a slow one is reported as blocking the loop.

    Example:
        ```python
        @lightwork.task(name="welcome-email", timeout=5, on_error=report)
        async def send_welcome_email(address: str) -> None: ...

        background.add_task(send_welcome_email, "ada@example.com")
        ```
    """
    options = TaskOptions(
        name=name,
        timeout=timeout,
        slow_threshold=slow_threshold,
        block_threshold=block_threshold,
        on_complete=on_complete,
        on_error=on_error,
        run_if=run_if,
        shield=shield,
        inline=inline,
    )

    def register(fn: F) -> F:
        code = code_of(fn)
        if code is None:
            raise TypeError(f"@lightwork.task decorates functions, not {fn!r}")
        if inline and code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            raise TypeError(f"inline=True is for sync functions; {fn.__qualname__} is async")
        _definitions[code] = options
        _facts.pop(code, None)
        return fn

    return register


def code_of(fn: object) -> CodeType | None:
    """Return the code object behind a function or a ``functools.partial`` of one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    return code if isinstance(code, CodeType) else None


def definition_of(code: CodeType | None) -> TaskOptions | None:
    """Return the options ``@lightwork.task`` gave the function with this code, if any."""
    return _definitions.get(code) if code is not None else None


# What add_task(fn, ...) must know about a function, found once per code object.
_facts: dict[CodeType, tuple[bool, TaskOptions | None, str]] = {}


def facts_of(fn: Callable[..., Any]) -> tuple[bool, TaskOptions | None, str]:
    """Return whether *fn* is async, its ``@task`` options, and its task name.

    Raises:
        TypeError: *fn* is an async generator function, which no task can run.
    """
    code = code_of(fn)
    if code is not None and (known := _facts.get(code)) is not None:
        return known
    if code is not None and code.co_flags & inspect.CO_ASYNC_GENERATOR:
        raise TypeError(f"add_task() cannot run the async generator function {fn!r}")
    is_async = bool(code is not None and code.co_flags & inspect.CO_COROUTINE)
    facts = (is_async or _is_async_callable(fn), definition_of(code), name_of(fn))
    if code is not None:
        _facts[code] = facts
    return facts


def facts_of_coroutine(coro: CoroutineType[Any, Any, Any]) -> tuple[bool, TaskOptions | None, str]:
    """Return what ``facts_of`` returns for the function that made *coro*."""
    code = coro.cr_code
    facts = _facts.get(code)
    if facts is None:
        facts = _facts[code] = (True, definition_of(code), short_name(coro.__qualname__))
    return facts


def _is_async_callable(obj: object) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 -- an async __call__, not callability
    )


def name_of(fn: object) -> str:
    """Return the default task name of a callable: its qualified name, without ``<locals>``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None)
    return short_name(name if isinstance(name, str) else type(fn).__qualname__)


def short_name(qualname: str) -> str:
    """Drop the enclosing function from a nested function's name: ``outer.<locals>.inner``."""
    return qualname.rpartition("<locals>.")[2]
