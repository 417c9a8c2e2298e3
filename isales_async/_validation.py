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
    """A string field: present when ``required``, at most ``max_len`` (or fewer than ``below``) characters."""
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValidationError(field, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(value)}")
    if below is not None and len(value) >= below:
        raise ValidationError(field, f"must be fewer than {below} characters, got {len(value)}")
    return value


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


def check_data_id(data_id: int | str) -> str:
    """``dataId`` is a positive integer, given as an int or as digits."""
    text = str(data_id)
    if isinstance(data_id, bool) or not text.isdigit() or int(text) < 1:
        raise ValidationError("data_id", f"must be a positive integer, got {data_id!r}")
    return text
