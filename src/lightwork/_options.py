"""Per-task options: what the caller may set, how the layers combine, and their validation."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, get_args

from ._types import RunIf

if TYPE_CHECKING:
    from collections.abc import Callable


class _Unset(enum.Enum):
    """Marks an option that was not passed, so ``timeout=None`` can mean "no limit"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET

_RUN_IF_VALUES: Final = get_args(RunIf)


def check_duration(option: str, value: object, *, allow_none: bool = True) -> None:
    """Raise a clear error unless *value* is a positive number of seconds (or ``None``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        allowed = "a number of seconds or None" if allow_none else "a number of seconds"
        raise TypeError(f"{option} must be {allowed}, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{option} must be a positive, finite number of seconds, not {value!r}")


def check_run_if(value: object) -> None:
    """Raise a clear error unless *value* is one of the ``RunIf`` choices."""
    if value not in _RUN_IF_VALUES:
        raise ValueError(
            f"run_if must be one of {', '.join(map(repr, _RUN_IF_VALUES))}, not {value!r}"
        )


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Options for a task; a field left unset falls through to the next layer.

    Layers, most specific first: the ``add_task`` call, the ``@lightwork.task`` definition,
    then the scheduler's defaults.
    """

    name: str | None = None
    timeout: float | _Unset | None = UNSET
    slow_threshold: float | _Unset | None = UNSET
    block_threshold: float | _Unset | None = UNSET
    on_complete: Callable[[Any], object] | None = None
    on_error: Callable[[BaseException], object] | None = None
    run_if: RunIf | None = None
    shield: bool | None = None
    inline: bool = False

    def __post_init__(self) -> None:
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise TypeError(f"name must be a non-empty string, not {self.name!r}")
        if self.timeout is not UNSET:
            check_duration("timeout", self.timeout)
        if self.slow_threshold is not UNSET:
            check_duration("slow_threshold", self.slow_threshold)
        if self.block_threshold is not UNSET:
            check_duration("block_threshold", self.block_threshold)
        for option, callback in (("on_complete", self.on_complete), ("on_error", self.on_error)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{option} must be callable, not {callback!r}")
        if self.run_if is not None:
            check_run_if(self.run_if)
        if self.shield is not None and not isinstance(self.shield, bool):
            raise TypeError(f"shield must be True or False, not {self.shield!r}")

    def over(self, base: TaskOptions) -> TaskOptions:
        """Return these options with every unset field taken from *base*."""
        return TaskOptions(
            name=self.name if self.name is not None else base.name,
            timeout=self.timeout if self.timeout is not UNSET else base.timeout,
            slow_threshold=(
                self.slow_threshold if self.slow_threshold is not UNSET else base.slow_threshold
            ),
            block_threshold=(
                self.block_threshold if self.block_threshold is not UNSET else base.block_threshold
            ),
            on_complete=self.on_complete if self.on_complete is not None else base.on_complete,
            on_error=self.on_error if self.on_error is not None else base.on_error,
            run_if=self.run_if if self.run_if is not None else base.run_if,
            shield=self.shield if self.shield is not None else base.shield,
            inline=self.inline or base.inline,
        )
