"""The defaults ``@lightwork.task`` attaches to a function, found again from it or its coroutines.

``add_task(fn, ...)`` reads the definition off the function itself, so it is found whatever the
order of the decorators (``functools.wraps`` copies ``__dict__`` to the wrapper).
``add_task(fn(...))`` only has the coroutine, which knows its code and its function's qualname.
A function's own code names one function (or the closures of one ``def``, a new object at every
request, so nothing is kept per function object): the latest definition for it applies.
Functions wrapped by one decorator share the wrapper's code, but ``functools.wraps`` gives each
its own qualname: the pair tells them apart, unless two of the same name, defined differently,
share it, and then only the function form can.
"""

from __future__ import annotations

import functools
import inspect
from types import CodeType, CoroutineType, FunctionType, MethodType
from typing import TYPE_CHECKING, Any, Final

from ._options import TaskOptions

if TYPE_CHECKING:
    from collections.abc import Callable

Facts = tuple[bool, TaskOptions | None, str]
"""What ``add_task`` must know of a function: whether it is async, its definition, its name."""

ATTRIBUTE: Final = "_lightwork_task"
"""The attribute of a decorated function that holds its definition."""
_CO_COROUTINE: Final = inspect.CO_COROUTINE  # one lookup, not two, on add_task's hot path
_FUNCTION_TYPES: Final = (FunctionType, MethodType)

# The caches Final: compiled, each is then a C static, not an entry of the module's dict
# looked up at every use (130 instructions a coroutine's task, for _coroutine_facts).
_definitions: Final[dict[tuple[CodeType, str], TaskOptions]] = {}
"""The definitions, for coroutines: by code and qualname of the decorated function."""
_ambiguous: Final[set[tuple[CodeType, str]]] = set()
"""A decorator's wrapper code and a qualname that decorated functions of one name share,
with different options: only the function form can tell them apart."""
_defined_names: Final[set[str]] = set()
"""The qualnames that have a definition, or had one."""
_coroutine_facts: Final[dict[str, tuple[CodeType | None, Facts]]] = {}
"""The facts of coroutines, by qualname, with the code they are for: ``None`` for a qualname
no definition has, whose coroutines all have the same facts, whatever their code (and the
code is then not read, 240 instructions a task on 3.12). By qualname because a string keeps
its hash and a code object does not: hashing one hashes all its constants, at every lookup.
Same-named functions of different modules replace each other: slower, still right."""
_function_facts: Final[dict[tuple[CodeType, str | None], tuple[bool, str]]] = {}
"""Whether a callable that is not a plain async function is async, and its name."""


def register_for_coroutines(
    key: tuple[CodeType, str], options: TaskOptions, replaced: TaskOptions | None, *, own: bool
) -> None:
    """Register *options* for the coroutines of the function *key* names.

    For a function's *own* code, the latest definition applies: a function defined inside an
    endpoint is defined again at every request, and its coroutine is made right after. A
    decorator's wrapper is shared: another function of the same name wrapped by it, with
    other options, makes the key ambiguous (a function decorated again only replaces its
    own definition, *replaced*).
    """
    known = _definitions.get(key)
    if own or known is None or known is replaced or known == options:
        _definitions[key] = options
        _ambiguous.discard(key)
    else:
        _ambiguous.add(key)
    _defined_names.add(key[1])
    _coroutine_facts.pop(key[1], None)


def unwrap_partials(fn: object) -> object:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def definition_of(fn: object) -> TaskOptions | None:
    """Return the options ``@lightwork.task`` gave *fn*, or the function *fn* is a partial of."""
    while True:
        if type(fn) in _FUNCTION_TYPES:  # a method's __dict__ is its function's
            definition = fn.__dict__.get(ATTRIBUTE)  # see facts_of
        else:
            definition = getattr(fn, ATTRIBUTE, None)
        if isinstance(definition, TaskOptions):  # not what a mock makes up for any name
            return definition
        if not isinstance(fn, functools.partial):
            return None
        fn = fn.func


def facts_of(fn: Callable[..., Any]) -> Facts:
    """Return whether *fn* is async, its ``@task`` options, and its task name.

    Raises:
        TypeError: *fn* is an async generator function, which no task can run.
    """
    if type(fn) in _FUNCTION_TYPES and fn.__code__.co_flags & _CO_COROUTINE:
        # An async function or method, the common case: its own attributes say it all. Its
        # __dict__, not getattr(fn, ATTRIBUTE, None): compiled, a missing attribute makes and
        # formats an AttributeError, which cost an undecorated add_task(fn) 2,900 instructions.
        return True, fn.__dict__.get(ATTRIBUTE), short_name(fn.__qualname__)
    return _facts_of_other(fn)


def _facts_of_other(fn: Callable[..., Any]) -> Facts:
    target = unwrap_partials(fn)
    code = getattr(target, "__code__", None)
    if not isinstance(code, CodeType):  # a callable object: nothing to cache it by
        return _is_async_callable(fn), definition_of(fn), name_of(target)
    key = (code, getattr(target, "__qualname__", None))
    known = _function_facts.get(key)
    if known is None:
        if code.co_flags & inspect.CO_ASYNC_GENERATOR:
            raise TypeError(f"add_task() cannot run the async generator function {fn!r}")
        is_async = bool(code.co_flags & _CO_COROUTINE) or _is_async_callable(fn)
        known = _function_facts[key] = (is_async, name_of(target))
    return known[0], definition_of(fn), known[1]


def facts_of_coroutine(coro: CoroutineType[Any, Any, Any]) -> Facts:
    """Return what ``facts_of`` returns for the function that made *coro*.

    Raises:
        TypeError: decorated functions with the code and qualname of *coro* have different
            options, so which of them made it is unknown.
    """
    known = _coroutine_facts.get(coro.__qualname__)
    if known is not None and (known[0] is None or known[0] is coro.cr_code):
        return known[1]
    return _find_facts_of_coroutine(coro)


def _find_facts_of_coroutine(coro: CoroutineType[Any, Any, Any]) -> Facts:
    code, qualname = coro.cr_code, coro.__qualname__
    key = (code, qualname)
    if key in _ambiguous:
        raise TypeError(
            f"add_task() cannot tell which @lightwork.task definition of {qualname} made "
            f"{coro!r}, as functions of that name have different options: pass the function "
            f"instead, add_task({short_name(qualname)}, *args)"
        )
    facts = (True, _definitions.get(key), short_name(qualname))
    _coroutine_facts[qualname] = (code if qualname in _defined_names else None, facts)
    return facts


def _is_async_callable(obj: object) -> bool:
    obj = unwrap_partials(obj)
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 -- an async __call__, not callability
    )


def name_of(fn: object) -> str:
    """Return the default task name of a callable: its qualified name, without ``<locals>``."""
    fn = unwrap_partials(fn)
    name = getattr(fn, "__qualname__", None)
    return short_name(name if isinstance(name, str) else type(fn).__qualname__)


def short_name(qualname: str) -> str:
    """Drop the enclosing function from a nested function's name: ``outer.<locals>.inner``."""
    if "<locals>." not in qualname:  # most names: rpartition() makes a tuple and strings
        return qualname
    return qualname.rpartition("<locals>.")[2]
