"""One writeback record: its fields, its checks, and the exact request it becomes; pure.

A batch, its journal and a journal written by an earlier version all derive a record's
key (the canonical dataId), body and fingerprint here, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from .._errors import ValidationError
from .._validation import check_data_id, check_text

__all__ = [
    "MAX_CODE_LEN",
    "WRITEBACK_FIELDS",
    "PreparedWriteback",
    "Writeback",
    "fingerprint",
    "prepare",
    "writeback_body",
]

MAX_CODE_LEN = 50

_JSON_FIELDS = {
    "dataId": "data_id",
    "busiResult": "busi_result",
    "subStatus": "sub_status",
    "busiResultDesc": "busi_result_desc",
    "workNo": "work_no",
}
#: A writeback's fields by their camelCase API names, in the API's order (CSV columns, JSON keys).
WRITEBACK_FIELDS: tuple[str, ...] = tuple(_JSON_FIELDS)


@attrs.frozen
class Writeback:
    """One business result to write back for the outbound call record ``data_id``."""

    data_id: int | str
    busi_result: str
    sub_status: str | None = None
    busi_result_desc: str | None = None
    work_no: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record with the API's camelCase names, empty fields left out."""
        return {api: getattr(self, name) for api, name in _JSON_FIELDS.items() if getattr(self, name) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Writeback:
        """Build from camelCase keys (``dataId``, ``busiResult``, ...); blank optional fields are ``None``."""
        unknown = set(data) - set(_JSON_FIELDS)
        if unknown:
            raise ValidationError(sorted(unknown)[0], "is not a writeback field")
        if data.get("dataId") in (None, ""):
            raise ValidationError("dataId", "is required")
        values = {name: (data.get(api) if data.get(api) != "" else None) for api, name in _JSON_FIELDS.items()}
        values["busi_result"] = values["busi_result"] or ""
        return cls(**values)  # type: ignore[arg-type]


def writeback_body(
    busi_result: str, sub_status: str | None, busi_result_desc: str | None, work_no: str | None
) -> dict[str, Any]:
    """Validate a writeback and build its JSON body (optional fields that are ``None`` or ``""`` are left out)."""
    body: dict[str, Any] = {"busiResult": check_text("busi_result", busi_result, max_len=MAX_CODE_LEN, required=True)}
    # Each field checked in the API's order, and only when given: most records give few.
    if sub_status is not None and check_text("sub_status", sub_status, max_len=MAX_CODE_LEN):
        body["subStatus"] = sub_status
    if busi_result_desc is not None and check_text("busi_result_desc", busi_result_desc):
        body["busiResultDesc"] = busi_result_desc
    if work_no is not None and check_text("work_no", work_no):
        body["workNo"] = work_no
    return body


def fingerprint(key: str, body: Mapping[str, Any]) -> str:
    """A digest of what one writeback sends: the canonical dataId and the exact body bytes.

    Equal fingerprints mean the same request; a re-run compares them to tell a record
    already applied from one whose payload has changed since.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=16)
    digest.update(b"\n")
    digest.update(orjson.dumps(body))
    return digest.hexdigest()


@attrs.frozen
class PreparedWriteback:
    """A record checked and ready to send: ``key`` is its canonical dataId.

    Its :attr:`fingerprint` is computed when first asked for: only a journal compares
    and records it, and a batch without one never pays for the digest.
    """

    key: str
    body: dict[str, Any]
    _fingerprint: str | None = attrs.field(default=None, alias="fingerprint", eq=False, repr=False)

    @property
    def fingerprint(self) -> str:
        """The payload's digest (:func:`fingerprint`)."""
        digest = self._fingerprint
        if digest is None:
            digest = fingerprint(self.key, self.body)
            object.__setattr__(self, "_fingerprint", digest)  # frozen: a cache, set once
        return digest


def prepare(record: object) -> PreparedWriteback:
    """Check ``record`` and build its request, or raise the :class:`ValidationError` naming its bad field."""
    if not isinstance(record, Writeback):
        raise ValidationError("record", f"expected a Writeback, got {type(record).__name__}")
    key = check_data_id(record.data_id)
    return PreparedWriteback(
        key, writeback_body(record.busi_result, record.sub_status, record.busi_result_desc, record.work_no)
    )
