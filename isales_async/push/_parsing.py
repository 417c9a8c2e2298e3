"""Reading a pushed body, pure: the call results, and the records that are not.

A malformed record cannot become well formed by being pushed again, so it is set apart
(:class:`InvalidPushRecord`) and does not hold back the push's good records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from .._errors import PushFormatError
from .._models import CallResult, _camel, converter

__all__ = ["InvalidPushRecord", "PushBatch", "log_invalid_record", "parse_push", "parse_push_batch"]

logger = logging.getLogger("isales_async.push")


@attrs.frozen
class InvalidPushRecord:
    """A pushed record that is not a call result: where it was, what it was, and why it was refused.

    ``raw`` is the record's JSON value as parsed (a dict, or whatever else was there).
    """

    index: int
    raw: Any
    reason: str


@attrs.frozen
class PushBatch:
    """A parsed push: the well-formed call results in push order, and the records that were not."""

    results: list[CallResult]
    invalid: list[InvalidPushRecord]


_CALL_RESULT_FIELDS = tuple(
    (_camel(f.name), f.type) for f in attrs.fields(attrs.resolve_types(CallResult)) if f.type and f.name != "extra"
)


def parse_push_batch(body: bytes) -> PushBatch:
    """Split a pushed body into call results and invalid records.

    Raises :class:`PushFormatError` only when the body as a whole is not a JSON list;
    a record that cannot be read is reported in ``invalid`` and the others are kept.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PushFormatError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise PushFormatError(f"the body must be a JSON list of call results, got {_json_type(data)}")
    hook = converter.get_structure_hook(CallResult)
    results, invalid = [], []
    for index, item in enumerate(data):
        read = _read_record(index, item, hook)
        if isinstance(read, InvalidPushRecord):
            invalid.append(read)
        else:
            results.append(read)
    return PushBatch(results, invalid)


def parse_push(body: bytes) -> list[CallResult]:
    """The pushed call results, all of them well formed, or :class:`PushFormatError` naming the first bad one.

    The strict form of :func:`parse_push_batch`, for code that must take a push whole.
    """
    batch = parse_push_batch(body)
    if batch.invalid:
        first = batch.invalid[0]
        raise PushFormatError(f"item {first.index} {first.reason}")
    return batch.results


def _read_record(index: int, item: Any, hook: Callable[[Any, Any], CallResult]) -> CallResult | InvalidPushRecord:
    if not isinstance(item, dict):
        return InvalidPushRecord(index, item, f"is not a JSON object but {_json_type(item)}")
    call_id = item.get("callId")
    if call_id is None:
        return InvalidPushRecord(index, item, "has no callId")
    if not isinstance(call_id, str) or not call_id.strip():
        # The callId is the key of de-duplication: it is taken exactly as sent or not at all.
        return InvalidPushRecord(index, item, f"has callId {call_id!r}, not a non-empty string")
    try:
        result = hook(item, CallResult)
    except Exception as exc:
        return InvalidPushRecord(index, item, f"is not a call result: {_failing_field(item) or exc}")
    return result


def _failing_field(item: Mapping[str, Any]) -> str | None:
    """Which field of a record the model refused, and why (the model's own error names none)."""
    for key, field_type in _CALL_RESULT_FIELDS:
        if key in item:
            try:
                converter.structure(item[key], field_type)
            except Exception as exc:
                return f"{key} {item[key]!r}: {exc}"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def log_invalid_record(record: InvalidPushRecord) -> None:
    """The default ``on_invalid``: log the record, raw, at ERROR on the ``isales_async.push`` logger."""
    logger.error(
        "pushed record %d %s; it is not delivered and will not be pushed again: %s",
        record.index,
        record.reason,
        orjson.dumps(record.raw).decode(),
    )
