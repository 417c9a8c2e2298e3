"""The fake's routes and what it checks of a request before any endpoint logic, as the real
server does: the path, the query keys, the Content-Type, the body's keys and JSON types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import orjson

from .._envelope import SUCCESS

__all__ = [
    "ROUTES",
    "Reject",
    "check_content_type",
    "check_query_keys",
    "envelope_of",
    "is_sub_result",
    "match_path",
    "page_args",
    "parse_integer",
    "parse_query",
    "request_body",
    "text_field",
]


class Reject(Exception):
    """A business error answer: HTTP 200 with a failing result code."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


# (method, path pattern split in segments); "{x}" segments capture.
ROUTES: Sequence[tuple[str, str, tuple[str, ...]]] = (
    ("queryOBSResultCode", "GET", ("queryOBSResultCode",)),
    ("queryBusinessResults", "GET", ("queryBusinessResults",)),
    ("callBusiResult", "POST", ("callBusiResult", "{dataId}")),
    ("callresultdetail", "GET", ("callresultdetail", "{callId}")),
    ("callresult", "POST", ("callresult", "{campaignId}")),
    ("createObResult", "POST", ("createObResult",)),
    ("queryOBSResults", "GET", ("queryOBSResults",)),
    ("queryObsResultDetail", "GET", ("{defId}", "queryObsResultDetail")),
    ("updateObResult", "POST", ("updateObResult",)),
)

# Per endpoint: the code for a bad pageSize and for a bad pageNum.
_PAGING_CODES = {
    "queryOBSResultCode": ("0200001", "0200001"),
    "queryBusinessResults": ("0200005", "0200007"),
    "queryOBSResults": ("0200001", "0200001"),
}


def match_path(segments: Sequence[str], pattern: Sequence[str]) -> dict[str, str] | None:
    if len(segments) != len(pattern):
        return None
    params = {}
    for seg, pat in zip(segments, pattern, strict=False):
        if pat.startswith("{"):
            params[pat[1:-1]] = seg
        elif seg != pat:
            return None
    return params


def parse_query(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in raw.split("&") if raw else ():
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return tuple(pairs)


def page_args(endpoint: str, query: dict[str, str]) -> tuple[int, int]:
    size_code, num_code = _PAGING_CODES[endpoint]
    size, num = _query_int(query, "pageSize"), _query_int(query, "pageNum")
    if not 1 <= size <= 50:
        raise Reject(size_code, f"pageSize must be 1-50, got {size}")
    if num < 1:
        raise Reject(num_code, f"pageNum must be greater than 0, got {num}")
    return num, size


def envelope_of(desc: str, **fields: Any) -> dict[str, Any]:
    return {"resultCode": SUCCESS, "resultDesc": desc, "returnCode": SUCCESS, "returnDesc": desc, **fields}


def text_field(body: dict[str, Any], key: str, *, required: bool = False, max_len: int | None = None) -> str | None:
    """A string field's value (its type was checked by :func:`request_body`)."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise Reject("02000001", f"{key} is empty")
        return None
    if max_len is not None and len(value) > max_len:
        raise Reject("02000003", f"{key} exceeds {max_len} characters")
    return value  # type: ignore[no-any-return]


# What the real server refuses before any endpoint logic, as a conversion error
# ("02000008 Parameter conversion error") where the pages name no other code.
_CONVERSION = "02000008"
_JAVA_INT_MAX = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_METHODS = {name: method for name, method, _ in ROUTES}
#: The query parameters each endpoint takes; the others take none.
_QUERY_KEYS = {name: frozenset({"pageSize", "pageNum"}) for name in _PAGING_CODES}
#: The keys of each POST endpoint's body and the JSON type of each (``list`` is a list of
#: strings), from the pages; ``null`` counts as absent.
_BODY_FIELDS: dict[str, dict[str, type]] = {
    "callBusiResult": {"busiResult": str, "subStatus": str, "busiResultDesc": str, "workNo": str},
    "callresult": {
        "sessionId": str,
        "customField": str,
        "pageSize": int,
        "pageNum": int,
        "showDetail": int,
        "beginTime": str,
        "endTime": str,
    },
    "createObResult": {"resultCode": str, "displayResult": str, "obsCodes": list},
    "updateObResult": {"defId": str, "displayResult": str, "obsCodes": list},
}
_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list of strings"}


def check_content_type(value: str | None) -> None:
    """The pages fix it to ``application/json; charset=UTF-8`` (case and spacing aside)."""
    media, _, parameters = (value or "").partition(";")
    if media.strip().lower() != "application/json" or parameters.replace(" ", "").lower() != "charset=utf-8":
        raise Reject(_CONVERSION, f"Content-Type must be application/json; charset=UTF-8, got {value!r}")


def check_query_keys(endpoint: str, query: Sequence[tuple[str, str]]) -> None:
    allowed = _QUERY_KEYS.get(endpoint, frozenset())
    for key, _ in query:
        if key not in allowed:
            raise Reject(_CONVERSION, f"unknown query parameter {key!r}")


def _query_int(query: dict[str, str], key: str) -> int:
    text = query.get(key, "")
    if text == "":
        raise Reject("02000001", f"{key} is empty")
    return parse_integer(key, text)


def parse_integer(name: str, text: str) -> int:
    """A path or query value the server converts to a Java ``Integer``."""
    if len(text) > len(str(-_JAVA_INT_MAX)) or not _INTEGER.fullmatch(text) or abs(int(text)) > _JAVA_INT_MAX:
        raise Reject(_CONVERSION, f"{name} is not an integer: {text!r}")
    return int(text)


def _has_type(value: Any, expected: type) -> bool:
    if expected is int:
        return type(value) is int and abs(value) <= _JAVA_INT_MAX
    if expected is list:
        return type(value) is list and all(type(item) is str for item in value)
    return type(value) is expected


def request_body(endpoint: str, text: str) -> dict[str, Any]:
    """The JSON object body of a POST, every key known and of its type; a GET has none."""
    if _METHODS[endpoint] == "GET":
        if text:
            raise Reject(_CONVERSION, f"{endpoint} takes no request body")
        return {}
    if not text:
        raise Reject(_CONVERSION, "the request body is missing")
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Reject(_CONVERSION, "the request body is not JSON") from None
    if type(body) is not dict:
        raise Reject(_CONVERSION, "the request body must be a JSON object")
    fields = _BODY_FIELDS[endpoint]
    for key, value in body.items():
        expected = fields.get(key)
        if expected is None:
            raise Reject(_CONVERSION, f"unknown parameter {key!r}")
        if value is not None and not _has_type(value, expected):
            raise Reject(_CONVERSION, f"{key} must be {_TYPE_NAMES[expected]}, got {orjson.dumps(value).decode()}")
    return body


def is_sub_result(item: Mapping[str, Any]) -> bool:
    """Whether a listed business result is marked ``defLevel`` 2 (sent as ``"2"`` or ``2``)."""
    try:
        return int(str(item.get("defLevel", "")).strip()) == 2
    except ValueError:
        return False
