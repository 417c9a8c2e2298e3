"""Turn ``(status, headers, body)`` into the response data or the right exception.

This is the one place where HTTP statuses and the API's ``resultCode``/``returnCode``
envelope are mapped to :mod:`isales_async._errors`. Pure: no I/O, no clock (the wall
time needed to read an HTTP-date ``Retry-After`` is passed in).
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ._endpoints import Endpoint, ErrorKind
from ._errors import (
    AuthenticationError,
    BusinessError,
    HTTPStatusError,
    InvalidParameterError,
    NotFoundError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
)

__all__ = ["SUCCESS", "business_error", "decipher", "parse_retry_after"]

SUCCESS = "0200000"
_CODE_FIELDS = (("resultCode", "resultDesc"), ("returnCode", "returnDesc"))
_AUTH_HINT = (
    "the server refused the request signature (HTTP 401). Usual causes: a wrong AK or SK, "
    "the client clock differing from the server's, or a Host header that differs from the "
    "signed host (a proxy rewriting it)"
)


_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?")
_INFINITY = frozenset({"inf", "+inf", "infinity", "+infinity"})


def parse_retry_after(value: str | None, now: _dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or ``None``.

    Only what is meaningful counts: digits (a decimal fraction tolerated) or a date not
    in the past. Anything else (text, a sign, NaN, a past date) says nothing and is
    ``None``. ``inf``, and a number too large for a float, is ``math.inf``: longer than
    any cap, so never taken as a pause (see :class:`~isales_async.RetryPolicy`).
    """
    if not value:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    if text.lower() in _INFINITY:
        return math.inf
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    seconds = (when - now).total_seconds()
    return seconds if seconds >= 0 else None


def _snippet(body: bytes) -> str:
    return body[:120].decode("utf-8", "replace")


def business_error(endpoint: Endpoint, code: str, description: str) -> BusinessError:
    """The typed error for ``code`` as ``endpoint`` defines it."""
    kind, meaning = endpoint.meaning(code)
    cls = {ErrorKind.PARAMETER: InvalidParameterError, ErrorKind.NOT_FOUND: NotFoundError}.get(kind, BusinessError)
    return cls(code=code, description=description, endpoint=endpoint.name, meaning=meaning)


def _check_status(endpoint: Endpoint, status: int, headers: Mapping[str, str], body: bytes, now: _dt.datetime) -> None:
    if 200 <= status < 300:
        return
    name = endpoint.name
    if status == 401:
        raise AuthenticationError(f"{name}: {_AUTH_HINT}", status=status, endpoint=name)
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    if status == 429:
        raise RateLimitedError(
            f"{name}: rate limited (HTTP 429)", status=status, endpoint=name, retry_after=retry_after
        )
    message = f"{name}: HTTP {status}: {_snippet(body)}"
    if status >= 500:
        raise ServerError(message, status=status, endpoint=name, retry_after=retry_after)
    raise HTTPStatusError(message, status=status, endpoint=name)


def decipher(
    endpoint: Endpoint,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: _dt.datetime,
) -> dict[str, Any]:
    """Return the JSON object of a successful response, or raise the matching error.

    Success is a 2xx status and a JSON object whose ``resultCode`` (or, when absent,
    ``returnCode``) is ``0200000``; any failing code present raises.
    """
    _check_status(endpoint, status, headers, body, now)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ResponseFormatError("response body is not JSON", endpoint=endpoint.name, snippet=_snippet(body)) from None
    if not isinstance(data, dict):
        raise ResponseFormatError("response body is not a JSON object", endpoint=endpoint.name, snippet=_snippet(body))
    seen_code = False
    for code_field, desc_field in _CODE_FIELDS:
        code = data.get(code_field)
        if code is None:
            continue
        seen_code = True
        if str(code) != SUCCESS:
            raise business_error(endpoint, str(code), str(data.get(desc_field) or ""))
    if not seen_code:
        raise ResponseFormatError("response has no resultCode", endpoint=endpoint.name, snippet=_snippet(body))
    return data
