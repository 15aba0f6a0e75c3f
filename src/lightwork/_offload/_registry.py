"""``@lightwork.offloadable``: the registry of jobs, looked up by name on both sides of a queue.

The web process and every worker import the same module of plain functions; the decorator
registers each under a name, so a job crosses the queue as a name and a JSON payload, never
as pickled code. Workers look the name up here and call the function.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, overload

from ._exceptions import JobNotRegisteredError

F = TypeVar("F", bound=Callable[..., Any])

_MAIN_ALIASES: Final = ("__mp_main__",)  # how a worker process names the parent's __main__


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered job: its name and the function a worker calls for it."""

    name: str
    function: Callable[..., Any]
    module: str
    """The module to import so that the registration exists in a fresh worker process."""
    is_async: bool
    signature: inspect.Signature = field(repr=False, compare=False)
    _positions: dict[str, int] | None = field(init=False, repr=False, compare=False)
    _required: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # For fits(): a signature of plain parameters (no *args, **kwargs or keyword-only
        # ones), where the first _required have no default.
        parameters = list(self.signature.parameters.values())
        plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
        positions = {p.name: i for i, p in enumerate(parameters)} if plain else None
        required = sum(p.default is inspect.Parameter.empty for p in parameters)
        object.__setattr__(self, "_positions", positions)
        object.__setattr__(self, "_required", required)

    def fits(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Tell whether the arguments surely fit the function's signature.

        ``False`` means "ask ``signature.bind()``", which says what is wrong: this check,
        run by every ``offload()``, costs a tenth of that.
        """
        positions = self._positions
        if positions is None or len(args) > len(positions):
            return False
        by_position = given = len(args)
        for name in kwargs:
            position = positions.get(name)
            if position is None or position < by_position:  # unknown, or given twice
                return False
            if position < self._required:
                given += 1  # a required one, given by keyword
        return given >= self._required

    def run(self, args: list[Any], kwargs: dict[str, Any], job_id: str | None) -> Any:
        """Call the job from a worker thread or process (not from an event loop)."""
        token = _current_job_id.set(job_id)
        try:
            if self.is_async:
                return asyncio.run(self.function(*args, **kwargs))
            return self.function(*args, **kwargs)
        finally:
            _current_job_id.reset(token)

    async def arun(self, args: list[Any], kwargs: dict[str, Any], job_id: str | None) -> Any:
        """Call the job from an event loop: async jobs are awaited, sync ones run in a thread."""
        token = _current_job_id.set(job_id)  # asyncio.to_thread carries it to the thread
        try:
            if self.is_async:
                return await self.function(*args, **kwargs)
            return await asyncio.to_thread(self.function, *args, **kwargs)
        finally:
            _current_job_id.reset(token)


_current_job_id: ContextVar[str | None] = ContextVar("lightwork_job_id", default=None)


def current_job_id() -> str | None:
    """Return the id of the offloaded job this code runs in, or ``None`` outside one.

    It is the id given to ``offload()`` (or generated there), the same on every delivery of
    the job, so a job can tell a repeat: with Celery, which may run a job delivered twice,
    record the ids of the jobs done and skip those seen before.

    Example:
        ```python
        @lightwork.offloadable("charge-order")
        def charge_order(order_id: int) -> None:
            if already_done(lightwork.current_job_id()):
                return
            ...
        ```
    """
    return _current_job_id.get()


_jobs: dict[str, Registration] = {}
_names: dict[Callable[..., Any], str] = {}


@overload
def offloadable(name: F, /) -> F: ...
@overload
def offloadable(name: str | None = None, /) -> Callable[[F], F]: ...
def offloadable(name: str | F | None = None, /) -> F | Callable[[F], F]:
    """Register a function as a job that may run outside the web process.

    ``background.offload(fn, ...)`` or ``background.offload("name", ...)`` then sends it to
    the app's offload backend, and the worker-side helpers of each backend register the
    same functions with the engine under the same names. The function is returned
    unchanged, so it can still be called and tested directly.

    Define jobs at module level, in a module that both the web app and the workers import
    (import heavy libraries inside the function body to keep the web process light). Plain
    sync functions are the normal case; async ones work on every first-party backend.

    Args:
        name: the job's name on the queue (default: the function's dotted path,
            ``module.qualname``). Choose a stable one: it outlives refactorings.

    Raises:
        TypeError: not a module-level function, or the name is empty.
        ValueError: the name is already registered to another function.

    Example:
        ```python
        @lightwork.offloadable("resize-image")
        def resize_image(path: str, width: int) -> str: ...

        background.offload(resize_image, "cat.png", width=200)
        ```
    """
    if callable(name):
        return _register(name, None)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise TypeError(f"@offloadable takes a non-empty job name, not {name!r}")
    return functools.partial(_register, name=name)


def _register(fn: F, name: str | None) -> F:
    if not inspect.isfunction(fn) or "<locals>" in fn.__qualname__:
        raise TypeError(
            f"@offloadable registers module-level functions, not {fn!r}: a worker process "
            "must be able to import it by its module and name"
        )
    module = fn.__module__
    if module in _MAIN_ALIASES:
        module = "__main__"
    job_name = name or f"{module}.{fn.__qualname__}"
    registration = Registration(
        name=job_name,
        function=fn,
        module=module,
        is_async=inspect.iscoroutinefunction(fn),
        signature=inspect.signature(fn),
    )
    existing = _jobs.get(job_name)
    if existing is not None and _origin(existing.function) != _origin(fn):
        raise ValueError(
            f"job name {job_name!r} is already registered to {_origin(existing.function)}; "
            f"give {_origin(fn)} another name"
        )
    _jobs[job_name] = registration
    _names[fn] = job_name
    return fn


def _origin(fn: Callable[..., Any]) -> str:
    module = fn.__module__
    return f"{'__main__' if module in _MAIN_ALIASES else module}.{fn.__qualname__}"


def lookup(target: str | Callable[..., Any]) -> Registration:
    """Return the registration of a job, by name or by function.

    Raises:
        JobNotRegisteredError: nothing is registered under that name or for that function;
            the message lists the names that are.
    """
    if isinstance(target, str):
        registration = _jobs.get(target)
        if registration is not None:
            return registration
        raise JobNotRegisteredError(
            f"no job is registered under the name {target!r}; known jobs: {_known()}. "
            "Decorate the function with @lightwork.offloadable and import its module"
        )
    name = _names.get(target)
    if name is not None:
        return _jobs[name]
    raise JobNotRegisteredError(
        f"{target!r} is not an offloadable job: decorate it with @lightwork.offloadable "
        f"(known jobs: {_known()})"
    )


def is_offloadable(fn: object) -> bool:
    """Tell whether *fn* is a function registered with ``@offloadable``."""
    try:
        return fn in _names
    except TypeError:  # unhashable callables are never registered
        return False


def registrations() -> dict[str, Registration]:
    """Return every registered job by name; the worker-side helpers register these."""
    return dict(_jobs)


def _known() -> str:
    return ", ".join(map(repr, sorted(_jobs))) or "none"
