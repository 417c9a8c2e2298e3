"""Input checks run before anything is sent; each failure names its field."""

from __future__ import annotations

from ._errors import ValidationError

__all__ = ["check_data_id", "check_header_safe", "check_int_range", "check_path_param", "check_text"]


def check_int_range(field: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` must be an int (not a bool) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError(field, f"must be {bound}, got {value}")
    return value


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


def check_header_safe(field: str, value: str) -> str:
    """A value that ends up in a header must not carry CR or LF (header injection)."""
    if "\r" in value or "\n" in value:
        raise ValidationError(field, "must not contain CR or LF")
    return value


def check_path_param(field: str, value: str | int) -> str:
    """A value placed in one path segment: it is percent-encoded, so it can never leave it,
    but the dot segments that servers normalise away are refused."""
    text = str(value)
    if not text or text in (".", ".."):
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
