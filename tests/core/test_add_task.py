"""``add_task``'s two forms, the ``@lightwork.task`` defaults, and the errors at the call site."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

import lightwork
from lightwork import Scheduler
from tests.support import wrong_type


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    async with Scheduler() as running:
        yield running


async def greet(name: str, *, timeout: float = 1.0) -> str:  # noqa: ASYNC109
    """A task whose own keywords share names with lightwork's options."""
    await asyncio.sleep(0)
    return f"hello {name} within {timeout}"


@lightwork.task(name="defined", timeout=7, slow_threshold=None)
async def defined(x: int) -> int:
    await asyncio.sleep(0)
    return x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x + 1


async def test_the_starlette_form_passes_every_keyword_to_the_function(
    scheduler: Scheduler,
) -> None:
    handle = scheduler.add_task(greet, "ada", timeout=3.0)
    assert await handle == "hello ada within 3.0"
    assert handle.timeout == 30.0  # the scheduler's default: `timeout=3.0` went to greet
    assert handle.name == "greet"


async def keywords_taken(**kwargs: object) -> dict[str, object]:
    return kwargs


async def test_every_option_name_is_the_function_s_own_keyword_in_the_starlette_form(
    scheduler: Scheduler,
) -> None:
    given: dict[str, object] = {
        "name": "mine", "timeout": "mine", "slow_threshold": 0, "block_threshold": None,
        "on_complete": None, "on_error": "mine", "run_if": "mine", "shield": 1, "colour": 1,
    }  # fmt: skip
    for handle in (
        scheduler.add_task(keywords_taken, **given),
        await scheduler.add_task_wait(keywords_taken, **given),
    ):
        assert await handle == given
        assert (handle.name, handle.timeout) == ("keywords_taken", 30.0)


async def test_the_coroutine_form_takes_options(scheduler: Scheduler) -> None:
    handle = scheduler.add_task(greet("ada"), name="greeting", timeout=2, slow_threshold=0.5)
    assert (handle.name, handle.timeout, handle.slow_threshold) == ("greeting", 2, 0.5)
    assert await handle == "hello ada within 1.0"


async def test_partials_and_async_callable_objects_run_on_the_loop(scheduler: Scheduler) -> None:
    assert await scheduler.add_task(functools.partial(greet, "bob")) == "hello bob within 1.0"
    assert await scheduler.add_task(AsyncCallable(), 1) == 2


async def test_task_definitions_give_defaults_to_both_forms(scheduler: Scheduler) -> None:
    by_function = scheduler.add_task(defined, 1)
    by_coroutine = scheduler.add_task(defined(2))
    overridden = scheduler.add_task(defined(3), timeout=1, name="custom")
    for handle in (by_function, by_coroutine):
        assert (handle.name, handle.timeout, handle.slow_threshold) == ("defined", 7, None)
    assert (overridden.name, overridden.timeout, overridden.slow_threshold) == ("custom", 1, None)
    assert [await h for h in (by_function, by_coroutine, overridden)] == [1, 2, 3]


def test_the_decorator_returns_the_function_unchanged() -> None:
    assert defined.__name__ == "defined"
    assert inspect.iscoroutinefunction(defined)
    with pytest.raises(TypeError, match="decorates functions"):
        lightwork.task(name="x")(42)  # type: ignore[type-var]


async def test_something_that_is_not_a_task_is_refused_with_what_was_passed(
    scheduler: Scheduler,
) -> None:
    with pytest.raises(TypeError, match=r"not 42 \(int\): did you call the function"):
        scheduler.add_task(42)  # type: ignore[call-overload]
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TypeError, match="pass a coroutine object"):
        scheduler.add_task(future)  # type: ignore[call-overload]


async def test_unknown_options_after_a_coroutine_are_refused_and_the_coroutine_closed(
    scheduler: Scheduler,
) -> None:
    coro = greet("ada")
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'retries'"):
        scheduler.add_task(coro, retries=3)  # type: ignore[call-overload]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    coro = greet("ada")
    with pytest.raises(TypeError, match="no positional arguments after a coroutine"):
        scheduler.add_task(coro, "extra")  # type: ignore[call-overload]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"timeout": "5"}, TypeError, "timeout must be a number of seconds or None, not '5'"),
        ({"timeout": True}, TypeError, "timeout must be a number"),
        ({"timeout": -1}, ValueError, "timeout must be a positive"),
        ({"slow_threshold": float("inf")}, ValueError, "slow_threshold must be a positive"),
        ({"on_complete": "print"}, TypeError, "on_complete must be callable"),
        ({"run_if": "sometimes"}, ValueError, "run_if must be one of"),
        ({"name": ""}, TypeError, "name must be a non-empty string"),
    ],
)
async def test_bad_option_values_are_refused_clearly(
    scheduler: Scheduler, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    coro = greet("ada")
    with pytest.raises(error, match=message):
        scheduler.add_task(coro, **options)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_wrong_arguments_for_the_function_fail_at_the_call_site(
    scheduler: Scheduler,
) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        scheduler.add_task(greet, "ada", colour="red")  # type: ignore[call-arg]


async def test_async_generator_functions_are_refused(scheduler: Scheduler) -> None:
    async def ticks() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="async generator function"):
        scheduler.add_task(ticks)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout must be a positive"),
        (
            {"drain_timeout": None},
            wrong_type("drain_timeout must be a number of seconds"),
        ),
        ({"max_threads": 0}, "max_threads must be a positive integer"),
    ],
)
def test_bad_scheduler_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        Scheduler(**options)
