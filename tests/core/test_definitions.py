"""``@lightwork.task`` definitions and task names, for functions that share a decorator's code."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar
from unittest.mock import AsyncMock, MagicMock

import pytest

import lightwork
from lightwork import Scheduler, TaskHandle
from lightwork._core import _definitions

P = ParamSpec("P")
T = TypeVar("T")


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    async with Scheduler() as running:
        yield running


def traced(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A decorator like most: every function it wraps runs the one code of ``wrapper``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await fn(*args, **kwargs)

    return wrapper


@traced
async def send_email() -> str:
    await asyncio.sleep(0)
    return "sent"


@lightwork.task(name="charge-card", timeout=5, shield=True)
@traced
async def charge_card() -> str:
    await asyncio.sleep(0)
    return "charged"


@traced
async def refresh_cache() -> str:
    await asyncio.sleep(0)
    return "refreshed"


@traced
@lightwork.task(name="capture-payment", timeout=4, shield=True)
async def capture_payment(amount: int) -> int:
    await asyncio.sleep(0)
    return amount


def settings(handle: TaskHandle[Any]) -> tuple[str, float | None, bool]:
    return handle.name, handle.timeout, handle.shield


async def test_functions_wrapped_by_one_decorator_keep_their_own_names_and_options(
    scheduler: Scheduler,
) -> None:
    handles = [
        scheduler.add_task(send_email),
        scheduler.add_task(charge_card),
        scheduler.add_task(refresh_cache),
        scheduler.add_task(send_email()),
        scheduler.add_task(charge_card()),
        scheduler.add_task(refresh_cache()),
    ]
    assert [settings(handle) for handle in handles] == 2 * [
        ("send_email", 30.0, False),
        ("charge-card", 5, True),
        ("refresh_cache", 30.0, False),
    ]
    assert [await handle for handle in handles] == 2 * ["sent", "charged", "refreshed"]


async def test_a_definition_under_another_decorator_is_found_by_the_function_form(
    scheduler: Scheduler,
) -> None:
    handles = [
        scheduler.add_task(capture_payment, 10),
        scheduler.add_task(functools.partial(capture_payment, 20)),
    ]
    assert [settings(handle) for handle in handles] == 2 * [("capture-payment", 4, True)]
    assert [await handle for handle in handles] == [10, 20]


def job_named(name: str) -> Callable[[], Coroutine[Any, Any, str]]:
    """Make a function that shares its code and qualname with every other one made here."""

    @lightwork.task(name=name)
    @traced
    async def job() -> str:
        await asyncio.sleep(0)
        return name

    return job


async def test_a_coroutine_whose_definition_is_ambiguous_is_refused_clearly(
    scheduler: Scheduler,
) -> None:
    # Wrapped by one decorator, under one name, with two definitions: only the function
    # form can tell them apart.
    first, second = job_named("first"), job_named("second")
    handles = [scheduler.add_task(first), scheduler.add_task(second)]
    assert [handle.name for handle in handles] == ["first", "second"]
    assert [await handle for handle in handles] == ["first", "second"]
    coro = second()
    with pytest.raises(TypeError, match=r"pass the function instead, add_task\(job, \*args\)"):
        scheduler.add_task(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_a_function_defined_per_request_takes_that_requests_definition(
    scheduler: Scheduler,
) -> None:
    async def endpoint(user: str) -> TaskHandle[str]:
        @lightwork.task(name=f"welcome {user}", on_error=lambda error: None)
        async def welcome() -> str:
            return user

        return scheduler.add_task(welcome())

    handles = [await endpoint(user) for user in ("ann", "bob", "cy")]
    assert [handle.name for handle in handles] == ["welcome ann", "welcome bob", "welcome cy"]
    assert [await handle for handle in handles] == ["ann", "bob", "cy"]


async def report() -> None:
    await asyncio.sleep(0)


async def test_a_function_decorated_again_takes_its_new_options(scheduler: Scheduler) -> None:
    for timeout in (1, 2):
        lightwork.task(timeout=timeout)(report)
        handles = [scheduler.add_task(report), scheduler.add_task(report())]
        assert [handle.timeout for handle in handles] == [timeout, timeout]
        for handle in handles:
            await handle


async def test_nested_functions_made_per_request_grow_no_cache(scheduler: Scheduler) -> None:
    def cached() -> int:
        found = vars(_definitions).items()
        return sum(len(v) for k, v in found if isinstance(v, dict | set) and k[:2] != "__")

    async def request(i: int) -> None:
        @lightwork.task(timeout=5)
        async def defined() -> int:
            return i

        async def plain() -> int:
            return i

        def in_a_thread() -> int:
            return i

        handles = [
            scheduler.add_task(defined),
            scheduler.add_task(defined()),
            scheduler.add_task(plain),
            scheduler.add_task(plain()),
            scheduler.add_task(in_a_thread),
        ]
        assert [handle.timeout for handle in handles] == [5, 5, 30, 30, 30]
        assert [await handle for handle in handles] == 5 * [i]

    await request(0)
    before = cached()
    for i in range(1, 50):
        await request(i)
    assert cached() == before


async def test_a_decorated_partial_gives_its_definition_to_itself_only(
    scheduler: Scheduler,
) -> None:
    async def double(x: int) -> int:
        return 2 * x

    doubling_one = lightwork.task(name="double-one")(functools.partial(double, 1))
    handles = [scheduler.add_task(doubling_one), scheduler.add_task(double(2))]
    assert [handle.name for handle in handles] == ["double-one", "double"]
    assert [await handle for handle in handles] == [2, 4]


class Mailer:
    async def send(self) -> None:
        await asyncio.sleep(0)


async def test_a_bound_method_decorated_defines_its_function_for_every_instance(
    scheduler: Scheduler,
) -> None:
    mailer = Mailer()
    assert lightwork.task(name="mail")(mailer.send) == mailer.send
    handles = [scheduler.add_task(Mailer().send), scheduler.add_task(mailer.send())]
    assert [handle.name for handle in handles] == ["mail", "mail"]
    for handle in handles:
        await handle


async def test_mocks_run_as_tasks_under_their_own_names(scheduler: Scheduler) -> None:
    async_mock, sync_mock = AsyncMock(return_value=1), MagicMock(return_value=2)
    handles = [scheduler.add_task(async_mock, "a"), scheduler.add_task(sync_mock, "b")]
    assert [await handle for handle in handles] == [1, 2]
    assert [handle.timeout for handle in handles] == [30.0, 30.0]  # no made-up definition
    async_mock.assert_awaited_once_with("a")
    sync_mock.assert_called_once_with("b")


def _job() -> Callable[[], Coroutine[Any, Any, None]]:
    async def job() -> None:
        await asyncio.sleep(0)

    return job


def _other_job() -> Callable[[], Coroutine[Any, Any, None]]:
    async def job() -> None:
        await asyncio.sleep(0)

    return job


async def test_a_name_defined_later_is_told_apart_by_its_code(scheduler: Scheduler) -> None:
    # Two functions of one qualname and two codes: the coroutines of a name that nothing
    # defined are known by their name alone, until something defines it.
    plain, defined = _job(), _other_job()
    plain.__qualname__ = defined.__qualname__ = "job"
    first = scheduler.add_task(plain())
    lightwork.task(timeout=7)(defined)
    handles = [first, scheduler.add_task(defined()), scheduler.add_task(plain())]
    assert [handle.timeout for handle in handles] == [scheduler.timeout, 7, scheduler.timeout]
    for handle in handles:
        await handle
