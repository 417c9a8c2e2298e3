"""The C2 auth-v2 signer against the vectors checked with the vendor's reference code."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from isales_async import sign
from isales_async._signing import _hmac_hex, _primed_hashes, canonical_request, enc, format_timestamp
from isales_async._validation import has_lone_surrogate

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


# -- the fast paths against the standard library --------------------------------------------


@given(st.text())
def test_enc_is_urllib_quote_with_only_unreserved_safe(value: str) -> None:
    """The table-driven encoder and the standard library agree on every text, short or long."""
    assume(not has_lone_surrogate(value))
    assert enc(value) == quote(value, safe="-._~")
    assert enc(value * 40) == quote(value * 40, safe="-._~")


@given(
    key=st.one_of(st.binary(max_size=63), st.binary(min_size=64, max_size=64), st.binary(min_size=65, max_size=200)),
    message=st.binary(max_size=300),
)
@example(key=b"k" * 65, message=b"m")
def test_primed_hmac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    """The copied inner and outer hashes give HMAC-SHA256 for keys shorter, as long as and
    longer than the block (the signing key is always exactly one block of hex digits)."""
    primed = _primed_hashes(key)
    assert _hmac_hex(primed, message) == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert _hmac_hex(primed, message) == _hmac_hex(primed, message)  # the primed hashes are not consumed
