"""The C2 auth-v2 signer against the vectors checked with the vendor's reference code."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from isales_async import sign
from isales_async._signing import canonical_request, enc, format_timestamp

DATA = Path(__file__).parent / "data" / "c2-auth-vectors.json"
SPEC = Path(__file__).parents[2] / "shared" / "spec" / "c2-auth-vectors.json"
VECTORS = json.loads(DATA.read_text())


@pytest.mark.skipif(not SPEC.exists(), reason="../shared/spec is not beside this checkout")
def test_vector_copy_is_the_spec_file() -> None:
    assert json.loads(SPEC.read_text()) == VECTORS


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_signer_matches_vector_byte_for_byte(vector: dict) -> None:
    signed = sign(
        method=vector["method"],
        path=vector["path"],
        query=[tuple(q) for q in vector["query"]],
        host=vector["headers"]["host"],
        body=vector["body"],
        ak=vector["ak"],
        sk=vector["sk"],
        timestamp=vector["timestamp"],
    )
    assert signed.canonical_request == vector["canonical_request"]
    assert signed.authorization == vector["authorization"]


def test_enc_keeps_only_unreserved_characters() -> None:
    assert enc("aZ09-._~") == "aZ09-._~"
    assert enc("a/b c:{}") == "a%2Fb%20c%3A%7B%7D"
    assert enc("é") == "%C3%A9"


def test_query_line_sorts_whole_encoded_strings() -> None:
    text = canonical_request("GET", "/p", [("page", "1"), ("page-x", "2")], {"host": "h"}, "")
    assert text.splitlines()[2] == "page-x=2&page=1"


def test_empty_query_value_and_no_query_line() -> None:
    with_empty = canonical_request("GET", "/p", [("k", "")], {"host": "h"}, "")
    assert with_empty.splitlines()[2] == "k="
    without = canonical_request("GET", "/p", [], {"host": "h"}, "")
    assert without == "GET\n/p\nhost\nhost:h\n"


def test_timestamp_is_utc_seconds_with_z() -> None:
    plus8 = dt.timezone(dt.timedelta(hours=8))
    assert format_timestamp(dt.datetime(2024, 1, 1, 8, 0, 0, 999, tzinfo=plus8)) == "2024-01-01T00:00:00Z"


def test_signature_depends_on_timestamp_body_and_host() -> None:
    base = {
        "method": "POST",
        "path": "/p",
        "query": [],
        "host": "h:1",
        "body": "{}",
        "ak": "a",
        "sk": "s",
        "timestamp": "2024-01-01T00:00:00Z",
    }
    reference = sign(**base).authorization
    for change in ({"timestamp": "2024-01-01T00:00:01Z"}, {"body": "{ }"}, {"host": "h:2"}, {"sk": "t"}):
        assert sign(**{**base, **change}).authorization != reference
