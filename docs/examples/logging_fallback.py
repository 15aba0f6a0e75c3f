"""When the app's logging raises, lightwork's events go to the standard ``lightwork`` logger."""

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

import lightwork


class Shipper:
    """A processor that sends each event to a log collector, and raises when it is down."""

    def __init__(self) -> None:
        self.collector_up = True
        self.shipped: list[EventDict] = []

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Ship the event, then pass it on to the renderer."""
        if not self.collector_up:
            raise ConnectionError("the log collector is unreachable")
        self.shipped.append(dict(event_dict))
        return event_dict


shipper = Shipper()


def configure_logging(file: TextIO = sys.stderr) -> None:
    """Configure structlog for the app, and a handler for lightwork's fallback messages."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            lightwork.add_log_fields,
            structlog.processors.add_log_level,
            shipper,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file),
    )
    fallback = logging.StreamHandler(file)
    fallback.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("lightwork").addHandler(fallback)
