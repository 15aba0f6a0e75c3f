"""The runtime every bench process shares: production-like logging and the chosen event loop."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Final, Literal, TypeVar

import structlog
import uvloop

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")

LoopName = Literal["asyncio", "uvloop"]
LOOPS: Final[dict[LoopName, Callable[[], asyncio.AbstractEventLoop]]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def configure_logging(level: int = logging.INFO) -> None:
    """Log at INFO, as production does, so that per-task debug events are filtered out.

    structlog's default configuration prints every level, debug included; an app in
    production filters below INFO, which is the cost users pay.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),  # stdout carries results
    )


def run_on(loop: LoopName, main: Coroutine[object, object, T]) -> T:
    """Run *main* to completion on a new event loop of the given kind."""
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(main)
