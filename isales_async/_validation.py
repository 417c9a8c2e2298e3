"""Input checks run before anything is sent; each failure names its field."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import attrs

from ._errors import ValidationError

__all__ = [
    "check_access_key",
    "check_bool",
    "check_clock",
    "check_data_id",
    "check_id",
    "check_int_range",
    "check_number",
    "check_path_param",
    "check_text",
    "field_check",
    "has_lone_surrogate",
]

# Visible ASCII except "/": the AK is a segment of "auth-v2/AK/TIMESTAMP/...".
_ACCESS_KEY = re.compile(r"[!-.0-~]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_int_range(field: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` must be an int (not a bool) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError(field, f"must be {bound}, got {value}")
    return value


def check_number(field: str, value: float | None, *, optional: bool = False, positive: bool = False) -> float | None:
    """A finite number (an int or float, never a bool), such as seconds: at least 0 (above
    0 if ``positive``); ``None`` too when ``optional``."""
    if value is None and optional:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (positive and value == 0):  # type: ignore[arg-type,operator]
        wanted = "a finite number above 0" if positive else "a finite number, at least 0"
        raise ValidationError(field, f"must be {wanted}{' or None' if optional else ''}, got {value!r}")
    return value


def check_bool(field: str, value: bool) -> bool:
    """A flag: ``True`` or ``False`` only, since a truthy string such as ``"false"`` would flip it."""
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be True or False, got {type(value).__name__} {value!r}")
    return value


_CLOCK_METHODS = ("monotonic", "wall", "sleep")


def check_clock(field: str, value: object) -> None:
    """``None`` or an object with the methods of :class:`isales_async.Clock` (a wrong one
    would fail the first request or sleep with an ``AttributeError``)."""
    if value is None:
        return
    missing = [name for name in _CLOCK_METHODS if not callable(getattr(value, name, None))]
    if missing:
        raise ValidationError(
            field,
            f"must be a Clock with monotonic(), wall() and sleep(), got {type(value).__name__}"
            f" (without {', '.join(f'{name}()' for name in missing)})",
        )


def field_check(check: Callable[..., object], **options: Any) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator that runs ``check(attribute_name, value, **options)``."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        check(attribute.name, value, **options)

    return validate


def check_text(
    field: str, value: str | None, *, max_len: int | None = None, required: bool = False, below: int | None = None
) -> str | None:
    """A string field: valid Unicode (no lone surrogates, which cannot be encoded as UTF-8),
    present when ``required``, at most ``max_len`` (or fewer than ``below``) characters."""
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value.isascii():
        _check_encodable(field, value)
    if required and not value.strip():
        raise ValidationError(field, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(value)}")
    if below is not None and len(value) >= below:
        raise ValidationError(field, f"must be fewer than {below} characters, got {len(value)}")
    return value


def _check_encodable(field: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            field, f"is not valid Unicode text: a lone surrogate U+{ord(value[exc.start]):04X} at position {exc.start}"
        ) from None


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate, which UTF-8 cannot encode."""
    return _SURROGATE.search(text) is not None


def check_access_key(field: str, value: object) -> str:
    """The AK: visible ASCII without ``/``, since it is one segment of the ``Authorization`` header."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not _ACCESS_KEY.fullmatch(value):
        raise ValidationError(
            field, "must be printable ASCII without spaces or '/' (it is a segment of 'auth-v2/AK/...')"
        )
    return value


def check_id(field: str, value: str | int) -> str:
    """An identifier given as a string or an int (never a bool), as non-empty text.

    Nothing else is turned into text: ``None``, ``True`` or ``1.5`` is an error, not ``"None"``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string or an integer, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    if has_lone_surrogate(value):
        raise ValidationError(field, "cannot be encoded as UTF-8 (it holds a lone surrogate)")
    return value


def check_path_param(field: str, value: str | int) -> str:
    """A value placed in one path segment (see :func:`check_id`).

    It is percent-encoded, so it can never leave its segment, but the dot segments that
    servers normalise away are refused.
    """
    text = check_id(field, value)
    if text in (".", ".."):
        raise ValidationError(field, f"{text!r} is not a usable path segment")
    return text


#: The largest dataId the server can read: it parses the path segment as a Java ``long``.
MAX_DATA_ID = 2**63 - 1


def check_data_id(data_id: int | str) -> str:
    """The canonical form of a ``dataId``: ASCII digits without sign or leading zeros, 1 to 2**63-1.

    An ``int`` (not a ``bool``) or a ``str`` of ASCII digits is accepted; ``"0001"`` is
    dataId ``1``. Other digits (fullwidth U+FF11, superscript U+00B2), signs, spaces
    and anything else are refused: the server would read some of them as another number.
    """
    if isinstance(data_id, bool) or not isinstance(data_id, (int, str)):
        raise ValidationError("data_id", f"must be an integer or a string of digits, got {type(data_id).__name__}")
    if isinstance(data_id, str):
        if not (data_id.isascii() and data_id.isdigit()):  # ASCII only: isdigit() alone takes "²"
            raise ValidationError(
                "data_id", f"must be ASCII digits only (no sign, space or other digits), got {data_id!r}"
            )
        digits = data_id.lstrip("0")
        if len(digits) > len(str(MAX_DATA_ID)):  # before int(): a huge digit string is refused, not parsed
            raise ValidationError("data_id", f"must be at most {MAX_DATA_ID}, got {len(digits)} digits")
        data_id = int(digits or "0")
    if not 1 <= data_id <= MAX_DATA_ID:
        raise ValidationError("data_id", f"must be between 1 and {MAX_DATA_ID}, got {data_id}")
    return str(data_id)
