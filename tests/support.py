"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import lightwork


def wrong_type(message: str) -> str:
    """Return what the refusal of an argument of the wrong type says, as a ``match`` pattern.

    Lightwork's own *message*, unless the compiled core runs: its constructors check their
    arguments' types first, with mypyc's message ("float object expected; got None").
    """
    return "object expected; got" if lightwork.compiled else message


def events(entries: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """Return the captured entries whose event is *name*."""
    return [e for e in entries if e["event"] == name]


async def wait_until(predicate: Callable[[], bool], deadline_s: float = 5.0) -> None:
    """Poll *predicate* on the event loop until it holds; fail after *deadline_s*."""
    async with asyncio.timeout(deadline_s):
        while not predicate():
            await asyncio.sleep(0.005)


def wait_in_thread(predicate: Callable[[], bool], deadline_s: float = 5.0) -> None:
    """Poll *predicate* from the test's thread until it holds; fail after *deadline_s*."""
    deadline = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def spin(seconds: float) -> None:
    """Compute on this thread, without awaiting, for *seconds* of its own CPU time.

    CPU time, not the clock's: on a busy machine the thread also waits for a CPU, which the
    watchdog does not charge to the task (a wall-clock spin would then be charged less).
    """
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass
