"""The fake server's own check of C2 ``auth-v2`` signatures, written from ``c2-auth.md``.

It deliberately shares no code with the client's signer (:mod:`isales_async._signing`):
were both built on the same helper, a bug in it would sign and verify alike and every
test would pass. Here the percent-encoding is a byte table of its own, the canonical
request is assembled from what the server *received* (the raw path, the decoded query,
the named headers' values, the body text), and the header is parsed strictly. It is held
against every vector of ``c2-auth-vectors.json`` by the tests. Pure: the caller passes
the current time.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence

import attrs

__all__ = ["ParsedAuthorization", "authorization", "canonical_request", "check", "parse", "percent_encode"]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENCODED = tuple(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in range(256))
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
_HEADER_NAME = re.compile(r"[a-z0-9-]+", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


def percent_encode(text: str) -> str:
    """Every UTF-8 byte of ``text`` except ``A-Z a-z 0-9 - . _ ~`` as ``%XX``, upper-case hex."""
    return "".join([_ENCODED[byte] for byte in text.encode("utf-8")])


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: str,
) -> str:
    """The text the signature covers.

    ``query`` holds the decoded parameters; ``headers`` maps each signed header's
    lower-case name to the value received. The query line and the body are present
    only when there is a query and a body.
    """
    names = sorted(headers)
    text = f"{method}\n{path}\n"
    if query:
        text += "&".join(sorted(f"{percent_encode(k)}={percent_encode(v)}" for k, v in query)) + "\n"
    text += ";".join(names) + "\n"
    text += "\n".join(sorted(f"{percent_encode(name)}:{percent_encode(headers[name])}" for name in names)) + "\n"
    if body:
        text += percent_encode(body)
    return text


def _hex_hmac(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(ak: str, sk: str, timestamp: str, signed_headers: Sequence[str], canonical: str) -> str:
    """The ``Authorization`` value for ``canonical``: the second HMAC is keyed with the
    first one's hex text, not its raw bytes."""
    prefix = f"auth-v2/{ak}/{timestamp}/{';'.join(signed_headers)}"
    return f"{prefix}/{_hex_hmac(_hex_hmac(sk, prefix), canonical)}"


def _signed_at(timestamp: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


@attrs.frozen
class ParsedAuthorization:
    """The parts of an ``auth-v2/{AK}/{TIMESTAMP}/{SIGNED_HEADERS}/{SIGNATURE}`` value."""

    ak: str
    timestamp: str
    signed_headers: tuple[str, ...]
    signature: str


def parse(value: str) -> ParsedAuthorization | str:
    """The parts of an ``Authorization`` value, or what is wrong with it."""
    parts = value.split("/")
    if len(parts) != 5 or parts[0] != "auth-v2":
        return "Authorization is not auth-v2/AK/TIMESTAMP/SIGNED_HEADERS/SIGNATURE"
    _, ak, timestamp, signed, signature = parts
    if not ak:
        return "the AK is empty"
    if not _TIMESTAMP.fullmatch(timestamp) or _signed_at(timestamp) is None:
        return "the timestamp is not UTC yyyy-mm-ddThh:mm:ssZ"
    names = tuple(signed.split(";"))
    if not all(_HEADER_NAME.fullmatch(name) for name in names) or list(names) != sorted(set(names)):
        return "the signed headers are not lower-case names, sorted, without repeats"
    if "host" not in names:
        return "the host header is not signed"
    if not _SIGNATURE.fullmatch(signature):
        return "the signature is not 64 lower-case hex digits"
    return ParsedAuthorization(ak, timestamp, names, signature)


def check(
    value: str,
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: str,
    secret_of: Callable[[str], str | None],
    now: _dt.datetime,
    max_skew: float,
) -> str:
    """Why the request's ``Authorization`` ``value`` is refused, or ``""`` when it is valid.

    ``headers`` holds every header received, by lower-case name; ``secret_of`` gives the
    SK of an AK (``None`` when unknown); ``now`` is an aware UTC time.
    """
    parsed = parse(value)
    if isinstance(parsed, str):
        return parsed
    sk = secret_of(parsed.ak)
    if sk is None:
        return "unknown AK"
    missing = [name for name in parsed.signed_headers if name not in headers]
    if missing:
        return f"signed headers missing from the request: {', '.join(missing)}"
    signed_at = _signed_at(parsed.timestamp)
    if signed_at is None or abs((now - signed_at).total_seconds()) > max_skew:
        return "timestamp outside the allowed clock skew"
    canonical = canonical_request(method, path, query, {n: headers[n] for n in parsed.signed_headers}, body)
    expected = authorization(parsed.ak, sk, parsed.timestamp, parsed.signed_headers, canonical)
    if not hmac.compare_digest(expected, value):
        return "signature mismatch; the server signed: " + canonical
    return ""
