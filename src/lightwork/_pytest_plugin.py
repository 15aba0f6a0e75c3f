"""lightwork's pytest plugin (entry point ``pytest11``): the ``lightwork_tasks`` fixture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .testing import TaskRecorder

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def lightwork_tasks() -> Iterator[TaskRecorder]:
    """Record the background tasks a test causes; ``wait()`` or ``await join()`` for them."""
    with TaskRecorder() as recorder:
        yield recorder
