"""Per-task options: what the caller may set, how the layers combine, and their validation."""

from __future__ import annotations

import enum
import types
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
_INFINITY: Final = float("inf")
_FUNCTION: Final = types.FunctionType
_callable: Final = callable  # compiled, a builtin named in a function is looked up per call


def check_duration(option: str, value: object, *, allow_none: bool = True) -> None:
    """Raise a clear error unless *value* is a positive number of seconds (or ``None``)."""
    if value is None and allow_none:
        return
    # One type at a time, and no math.isfinite(): compiled, each test is then native.
    if isinstance(value, float):
        if 0.0 < value < _INFINITY:  # NaN is neither
            return
    elif isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return
    else:
        allowed = "a number of seconds or None" if allow_none else "a number of seconds"
        raise TypeError(f"{option} must be {allowed}, not {value!r}")
    raise ValueError(f"{option} must be a positive, finite number of seconds, not {value!r}")


def check_run_if(value: object) -> None:
    """Raise a clear error unless *value* is one of the ``RunIf`` choices."""
    if value not in _RUN_IF_VALUES:
        raise ValueError(
            f"run_if must be one of {', '.join(map(repr, _RUN_IF_VALUES))}, not {value!r}"
        )


def check_name(value: object) -> None:
    """Raise a clear error unless *value* is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"name must be a non-empty string, not {value!r}")


def check_callback(option: str, value: object) -> None:
    """Raise a clear error unless *value* can be called."""
    if type(value) is not _FUNCTION and not _callable(value):  # a function: no call to check
        raise TypeError(f"{option} must be callable, not {value!r}")


def check_flag(option: str, value: object) -> None:
    """Raise a clear error unless *value* is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{option} must be True or False, not {value!r}")


OPTION_NAMES: Final = (
    "name",
    "timeout",
    "slow_threshold",
    "block_threshold",
    "on_complete",
    "on_error",
    "run_if",
    "shield",
)
"""The options a task may be given, in ``add_task(coro, ...)`` and ``@lightwork.task``."""


def check_option(option: str, value: object) -> bool:
    """Raise a clear error unless *value* suits the task option *option*; say if it is one.

    ``None`` suits every option: it leaves the option to the next layer. One function with a
    branch per option, not a table of checks: compiled, its comparisons are native, where a
    table's ``functools.partial`` was a Python call, a thousand instructions an option.
    """
    if value is None:
        return option in OPTION_NAMES
    if option in ("timeout", "slow_threshold", "block_threshold"):  # compiled: three ==
        check_duration(option, value)
    elif option in ("on_complete", "on_error"):
        check_callback(option, value)
    elif option == "name":
        check_name(value)
    elif option == "run_if":
        check_run_if(value)
    elif option == "shield":
        check_flag("shield", value)
    else:
        return False
    return True


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Options for a task; a field left unset falls through to the next layer.

    Layers, most specific first: the ``add_task`` call (its keyword parameters, each checked
    as it is read: building one of these per call costs microseconds), the
    ``@lightwork.task`` definition (one of these, made once, its options checked by
    ``task()``), then the scheduler's defaults.
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


NO_OPTIONS: Final = TaskOptions()
"""A definition that sets nothing: every option falls through to the scheduler."""
