"""JSON logs, one object per line: for production, where a log collector reads them."""

import logging
import sys
from typing import TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

import lightwork


def configure_json_logging(level: int = logging.INFO, file: TextIO = sys.stdout) -> None:
    """Render every structlog event, lightwork's included, as one JSON object per line.

    Call it before the app starts: lightwork's scheduler checks at start whether
    debug events are enabled.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # what you bind yourself
            lightwork.add_log_fields,  # request_id, method, path; in a task, its name and id
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # A failed task's traceback as JSON, without the frames' local variables: they
            # hold the task's arguments, which may be secrets or personal data.
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file),
    )
