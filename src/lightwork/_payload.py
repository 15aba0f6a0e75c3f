"""A job's arguments as JSON: checked at the ``offload()`` call, so errors point at the caller."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ._exceptions import OffloadPayloadError

if TYPE_CHECKING:
    import inspect
    from collections.abc import Mapping

    from ._backend import JSONValue
    from ._registry import Registration

DEFAULT_MAX_PAYLOAD_BYTES: Final = 256 * 1024

Arguments: TypeAlias = "tuple[list[JSONValue], dict[str, JSONValue]]"
"""A job's arguments as a worker receives them: the payload decoded."""

# Values of these exact types come back from JSON equal and of the same type (the encoder
# refuses NaN and infinities); subclasses, such as enums, may not.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})

# Strict JSON (no NaN), compact, and UTF-8 rather than \u escapes, so that the size we
# measure is the size the engine stores.
_encoder: Final = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def encode_arguments(
    registration: Registration, args: tuple[Any, ...], kwargs: dict[str, Any], max_bytes: int
) -> str:
    """Return the job's arguments as the JSON text every backend carries.

    Raises:
        TypeError: the arguments do not fit the job function's signature.
        OffloadPayloadError: an argument is not JSON-serialisable (the message names it),
            or the payload is larger than *max_bytes*.
    """
    if not registration.fits(args, kwargs):
        try:
            registration.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"offload({registration.name!r}): {exc}") from None
    try:
        text = _encoder.encode({"args": args, "kwargs": kwargs})
    except (TypeError, ValueError) as exc:
        bound = registration.signature.bind(*args, **kwargs)
        raise _bad_argument(registration.name, bound, exc) from exc
    # A character takes at most four bytes in UTF-8: only encode when the limit is near.
    if len(text) * 4 > max_bytes and (size := len(text.encode())) > max_bytes:
        raise OffloadPayloadError(
            f"the arguments of job {registration.name!r} take {size / 1024:.1f} KiB as JSON, "
            f"over the {max_bytes / 1024:.0f} KiB limit: store the data elsewhere (a database, "
            "object storage) and pass a reference to it, such as its key or URL"
        )
    return text


def decode_arguments(
    text: str, args: tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None
) -> Arguments:
    """Return the arguments a worker will receive: *text*, the payload, decoded.

    Given the *args* and *kwargs* it was encoded from, plain scalars are copied instead:
    decoding them would give them back unchanged.
    """
    if (
        args is not None
        and kwargs is not None
        and _PLAIN.issuperset(map(type, args))
        and _PLAIN.issuperset(map(type, kwargs.values()))
    ):
        return list(args), dict(kwargs)
    decoded = json.loads(text)
    return decoded["args"], decoded["kwargs"]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise a clear error unless the engine options can be stored in the outbox as JSON."""
    try:
        _encoder.encode(dict(options))
    except (TypeError, ValueError) as exc:
        raise OffloadPayloadError(
            f"the engine options of job {name!r} must be JSON-serialisable: {exc}"
        ) from exc


def _bad_argument(name: str, bound: inspect.BoundArguments, exc: Exception) -> Exception:
    for parameter, value in bound.arguments.items():
        try:
            _encoder.encode(value)
        except (TypeError, ValueError) as error:
            return OffloadPayloadError(
                f"argument {parameter!r} of job {name!r} cannot be sent as JSON ({error}): pass "
                "plain data (str, int, float, bool, None, and lists and dicts of them), "
                "such as a file's path rather than the file"
            )
    return OffloadPayloadError(f"the arguments of job {name!r} cannot be sent as JSON: {exc}")
