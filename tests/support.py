"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any


def events(entries: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """Return the captured entries whose event is *name*."""
    return [e for e in entries if e["event"] == name]


async def wait_until(predicate: Callable[[], bool], deadline_s: float = 5.0) -> None:
    """Poll *predicate* on the event loop until it holds; fail after *deadline_s*."""
    async with asyncio.timeout(deadline_s):
        while not predicate():
            await asyncio.sleep(0.005)
