"""``@lightwork.task``: a function's default options, checked and attached to it.

Not compiled, unlike the definitions it makes: its arguments are a user's, and lightwork's
checks must see them before a compiled constructor checks their types in its own words.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any, TypeVar

from ._definitions import ATTRIBUTE, register_for_coroutines, unwrap_partials
from ._options import UNSET, TaskOptions, _Unset, check_flag, check_option

if TYPE_CHECKING:
    from ._types import RunIf

F = TypeVar("F", bound=Callable[..., Any])


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

    ``add_task(fn, ...)`` always finds the defaults of the very function it is given. A
    coroutine, ``add_task(fn(...))``, only says its code and its function's name, so:

    - under another decorator (one that uses ``functools.wraps``), put ``@lightwork.task``
      outermost, or the coroutine comes from a wrapper that has no defaults;
    - functions of the same name wrapped by one decorator (``emails.send`` and ``sms.send``
      under ``@traced``) share the wrapper's code: with different defaults, the coroutine form
      raises ``TypeError``; pass such functions themselves;
    - functions made again and again by one ``def`` (inside an endpoint, or by a factory)
      take the defaults of the latest one made: pass the function if an earlier one's
      coroutine is made later.

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

    Raises:
        TypeError: what is decorated is not a function, or ``inline=True`` decorates an
            async one.

    Example:
        ```python
        @lightwork.task(name="welcome-email", timeout=5, on_error=report)
        async def send_welcome_email(address: str) -> None: ...

        background.add_task(send_welcome_email, "ada@example.com")
        ```
    """
    given: dict[str, Any] = {
        "name": name,
        "timeout": timeout,
        "slow_threshold": slow_threshold,
        "block_threshold": block_threshold,
        "on_complete": on_complete,
        "on_error": on_error,
        "run_if": run_if,
        "shield": shield,
    }
    for option, value in given.items():
        if value is not UNSET:
            check_option(option, value)
    check_flag("inline", inline)
    options = TaskOptions(**given, inline=inline)  # checked: compiled, it checks types too

    def register(fn: F) -> F:
        target = unwrap_partials(fn)
        code = getattr(target, "__code__", None)
        if not isinstance(code, CodeType):
            raise TypeError(f"@lightwork.task decorates functions, not {fn!r}")
        if inline and code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            raise TypeError(f"inline=True is for sync functions; {fn!r} is async")
        holder = getattr(fn, "__func__", fn)  # a bound method: its function, for every instance
        replaced = getattr(holder, ATTRIBUTE, None)
        setattr(holder, ATTRIBUTE, options)
        if target is fn:  # a partial's coroutines are its function's: they carry no definition
            own = code.co_qualname == holder.__qualname__  # not a decorator's wrapper
            register_for_coroutines((code, holder.__qualname__), options, replaced, own=own)
        return fn

    return register
