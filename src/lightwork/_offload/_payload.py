"""A job's arguments as JSON: checked at the ``offload()`` call, so errors point at the caller."""

from __future__ import annotations

import json
import re
from itertools import chain
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ._exceptions import OffloadPayloadError

if TYPE_CHECKING:
    import inspect
    from collections.abc import Mapping

    from ._registry import Registration

DEFAULT_MAX_PAYLOAD_BYTES: Final = 256 * 1024

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
"""A value that survives a JSON round trip unchanged (tuples arrive as lists)."""

Arguments: TypeAlias = "tuple[list[JSONValue], dict[str, JSONValue]]"
"""A job's arguments as a worker receives them: the payload decoded."""

# Values of these exact types come back from JSON equal and of the same type (the encoder
# refuses NaN and infinities); subclasses, such as enums, may not.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})
_STR: Final = frozenset({str})
_CONTAINERS: Final = (dict, list, tuple)
# How JSON writes an int, float, bool or None dict key (no str value looks so: its " are
# escaped). Scanning a text longer than the limit costs more than walking the arguments.
_CONVERTED_KEY: Final = re.compile(r'[{,]"(?:-?\d[^"]*|true|false|null)":')
_SCAN_LIMIT: Final = 1024

# Strict JSON (no NaN), compact, and UTF-8 rather than \u escapes, so that the size we
# measure is the size the engine stores.
_encoder: Final = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
# The same without the check for circular references, which costs every offload() a dict
# and a look-up per container (1,700 instructions); arguments that hold a cycle exhaust the
# recursion limit instead, and are encoded again by _encoder, which raises what it raised.
_unchecked_encoder: Final = json.JSONEncoder(
    allow_nan=False, ensure_ascii=False, separators=(",", ":"), check_circular=False
)


def encode_arguments(
    registration: Registration, args: tuple[Any, ...], kwargs: dict[str, Any], max_bytes: int
) -> tuple[str, Arguments]:
    """Return the job's arguments as the JSON text every backend carries, and decoded.

    The decoded arguments are what a worker will receive; plain scalars, which decoding
    would give back unchanged, are copied instead.

    Raises:
        TypeError: the arguments do not fit the job function's signature.
        OffloadPayloadError: an argument is not JSON-serialisable, holds text UTF-8 cannot
            encode (a lone surrogate) or a dict whose keys JSON makes equal (the message names
            it), or the payload is larger than *max_bytes*.
    """
    if not registration.fits(args, kwargs):
        try:
            registration.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"offload({registration.name!r}): {exc}") from None
    envelope = {"args": args, "kwargs": kwargs}
    try:
        try:
            text = _unchecked_encoder.encode(envelope)
        except RecursionError:  # a cycle (ValueError from _encoder), or nested too deep
            text = _encoder.encode(envelope)
        # One byte a character, or UTF-8's count, which also refuses lone surrogates.
        size = len(text) if text.isascii() else len(text.encode())
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        bound = registration.signature.bind(*args, **kwargs)
        raise _bad_argument(registration.name, bound, exc) from exc
    if size > max_bytes:
        raise OffloadPayloadError(
            f"the arguments of job {registration.name!r} take {size / 1024:.1f} KiB as JSON, "
            f"over the {max_bytes / 1024:.0f} KiB limit: store the data elsewhere (a database, "
            "object storage) and pass a reference to it, such as its key or URL"
        )
    # All plain scalars (tested in C, here rather than in a function of its own: a call per
    # offload() fewer), which decoding would give back unchanged: copied, not decoded.
    if _PLAIN.issuperset(map(type, args)) and _PLAIN.issuperset(map(type, kwargs.values())):
        return text, (list(args), dict(kwargs))
    if _may_merge_keys(text):
        _refuse_colliding_keys(registration, args, kwargs)
    return text, decode_arguments(text)


def decode_arguments(text: str) -> Arguments:
    """Return the arguments a worker will receive: *text*, the payload, decoded."""
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
            _encoder.encode(value).encode()
        except UnicodeEncodeError as error:
            return OffloadPayloadError(
                f"argument {parameter!r} of job {name!r} holds a lone surrogate "
                f"({error.object[error.start]!r}), which UTF-8 cannot encode (os.listdir() "
                "gives such text for a name that is not UTF-8): pass valid Unicode text"
            )
        except (TypeError, ValueError) as error:
            return OffloadPayloadError(
                f"argument {parameter!r} of job {name!r} cannot be sent as JSON ({error}): pass "
                "plain data (str, int, float, bool, None, and lists and dicts of them), "
                "such as a file's path rather than the file"
            )
    return OffloadPayloadError(f"the arguments of job {name!r} cannot be sent as JSON: {exc}")


def _may_merge_keys(text: str) -> bool:
    """Tell cheaply whether a dict in the arguments may have two keys JSON makes one.

    Asked only when the arguments are not all plain scalars, which hold no dict. Only a
    dict can, and only with a key that was no str: a text with no "{" but the
    envelope's two holds no dict, and a short text shows whether JSON wrote such a key (a
    str key may look so too).
    """
    if text.count("{") <= 2:
        return False
    return len(text) > _SCAN_LIMIT or _CONVERTED_KEY.search(text) is not None


def _refuse_colliding_keys(
    registration: Registration, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Refuse a dict whose keys JSON makes equal (``1`` and ``"1"``): one value would be lost."""
    if _colliding_key([*args, *kwargs.values()]) is None:
        return
    for parameter, value in registration.signature.bind(*args, **kwargs).arguments.items():
        if (collision := _colliding_key([value])) is not None:
            key, text = collision
            raise OffloadPayloadError(
                f"argument {parameter!r} of job {registration.name!r} has a dict with the keys "
                f"{key!r} and {text!r}, which JSON makes one, so a value would be lost: give "
                "the dict distinct string keys"
            )


def _colliding_key(values: list[Any]) -> tuple[Any, str] | None:
    """Find a dict key in *values* that JSON turns into another key of its dict.

    *values* have been encoded: they hold no cycle, and only keys JSON accepts. They are
    walked a level at a time, so that the keys and scalars of a level are looked at in C.
    Return the key and the one it collides with, or ``None``.
    """
    level = [value for value in values if isinstance(value, _CONTAINERS)]
    while level:
        dicts = [item for item in level if isinstance(item, dict)]
        if not _STR.issuperset(map(type, chain.from_iterable(dicts))):
            for mapping in dicts:
                if (collision := _collision(mapping)) is not None:
                    return collision
        children = [*chain.from_iterable(map(dict.values, dicts))]
        if len(dicts) < len(level):  # lists and tuples too
            children += chain.from_iterable(item for item in level if not isinstance(item, dict))
        if _PLAIN.issuperset(map(type, children)):
            return None
        level = [child for child in children if isinstance(child, _CONTAINERS)]
    return None


def _collision(mapping: dict[Any, Any]) -> tuple[Any, str] | None:
    # JSON writes an int, float, bool or None key as its JSON value (1 as "1", None as
    # "null"), and no two such keys alike: only a str key can be hit, and only by them.
    types = set(map(type, mapping))
    if _STR.issuperset(types) or not any(issubclass(kind, str) for kind in types):
        return None
    for key in mapping:
        if not isinstance(key, str) and (text := _encoder.encode(key)) in mapping:
            return key, text
    return None
