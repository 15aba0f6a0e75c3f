"""Readable, coloured console logs: for development, with lightwork's debug events shown."""

import logging
import sys
from typing import TextIO

import structlog

import lightwork


def configure_console_logging(level: int = logging.DEBUG, file: TextIO = sys.stdout) -> None:
    """Print every structlog event as one aligned line; at DEBUG, completed tasks show too."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            lightwork.add_log_fields,  # request_id, method, path; in a task, its name and id
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S.%f"),
            structlog.dev.ConsoleRenderer(colors=file.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file),
    )
