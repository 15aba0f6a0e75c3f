"""How the fault, load and property tests check that every task ended exactly once, in its logs.

A task's end is one structlog event named after its terminal state
(``background_task_<state>``); the records may be captured entries or parsed JSON lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final

from lightwork import TaskHandle, TaskState
from lightwork._core._handle import TERMINAL_STATES

TERMINAL_EVENTS: Final = {f"background_task_{state.value}": state for state in TERMINAL_STATES}
"""The event that reports each terminal state."""


def ends_by_task(records: Iterable[Mapping[str, Any]]) -> dict[int, list[TaskState]]:
    """Return, per task id, the terminal states its log events reported, in order."""
    ends: dict[int, list[TaskState]] = defaultdict(list)
    for record in records:
        state = TERMINAL_EVENTS.get(record.get("event", ""))
        if state is not None:
            ends[record["task_id"]].append(state)
    return ends


def assert_each_ended_once(
    handles: Iterable[TaskHandle[Any]], records: Iterable[Mapping[str, Any]]
) -> None:
    """Check that each handle ended, and that its one terminal event says the state it is in."""
    ends = ends_by_task(records)
    for handle in handles:
        assert handle.done(), f"{handle!r} has not ended"
        assert ends.get(handle.id) == [handle.state], (
            f"{handle!r} was logged as ending {ends.get(handle.id, [])}, not once as {handle.state}"
        )
