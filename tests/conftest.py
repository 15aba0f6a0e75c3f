"""Shared fixtures: every async test runs on both the default asyncio loop and uvloop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import pytest
import structlog
import uvloop
from structlog.testing import LogCapture

import lightwork

pytest_plugins = ["pytester"]

LOOPS: Mapping[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Parametrize every async test over both event loops."""
    return LOOPS


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend_options(request: pytest.FixtureRequest) -> dict[str, bool]:
    """Backend options for Starlette's TestClient: run its portal on each loop."""
    return {"use_uvloop": request.param == "uvloop"}


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Capture lightwork's structlog events, with the contextvars bound where they were logged."""
    capture = LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, lightwork.add_log_fields, capture]
    )
    try:
        yield capture.entries
    finally:
        structlog.reset_defaults()


@pytest.fixture(scope="module", autouse=True)
def collect_after_module() -> Iterator[None]:
    """A full collection as each module ends: what its tests left unclosed (a socket, a file)
    is finalised here, with a ``ResourceWarning`` that fails the run, not in a later module's
    test (per module, not per test: a collection per test costs the suite half its time)."""
    yield
    gc.collect()
