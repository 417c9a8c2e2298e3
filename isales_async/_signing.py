"""C2 ``auth-v2`` request signing, as a pure function.

The algorithm is the one in ``shared/spec/c2-auth.md``: an HMAC-SHA256 keyed with the SK
over a prefix gives a hex *signing key*; a second HMAC keyed with that hex string (as
text, not raw bytes) over the canonical request gives the signature. Nothing here does
I/O or reads the clock: the caller passes the timestamp, so every attempt of a retried
request is signed afresh by simply calling :func:`sign` again.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._errors import ValidationError
from ._secret import Secret

__all__ = [
    "SignedRequest",
    "authorization",
    "canonical_host_request",
    "canonical_request",
    "enc",
    "format_timestamp",
    "sign",
    "signing_key",
    "signing_prefix",
]

_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
#: Each byte (as a latin-1 character) to itself when unreserved, else to ``%XX``.
_PERCENT = [chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in range(256)]
_SHORT = 64


def _percent_encode(value: str) -> str:
    # The UTF-8 bytes, one latin-1 character each, mapped by str.translate in C: about
    # three times faster than urllib's quote, which walks the bytes in Python.
    return value.encode().decode("latin-1").translate(_PERCENT)


_enc_short = functools.lru_cache(maxsize=4096)(_percent_encode)


def enc(value: str) -> str:
    """Percent-encode every UTF-8 byte except ``A-Z a-z 0-9 - . _ ~`` (upper-case hex)."""
    # Names, page numbers and the host repeat on every request: those are cached; bodies are not.
    return _enc_short(value) if len(value) <= _SHORT else _percent_encode(value)


def format_timestamp(when: _dt.datetime) -> str:
    """Render ``when`` as the UTC, second-precision ``2024-01-01T00:00:00Z`` the scheme uses."""
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """``enc(k)=enc(v)`` pairs, sorted as whole strings, joined by ``&``."""
    return "&".join(sorted([f"{enc(k)}={enc(v)}" for k, v in query]))


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: str,
) -> str:
    """Build the text that is signed.

    ``path`` is the raw path exactly as sent (already percent-encoded where needed),
    ``query`` the raw, not yet URL-encoded parameters, ``headers`` the signed headers.
    The query line and the body are left out entirely when empty, as the reference does.
    """
    names = sorted(name.lower() for name in headers)
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = [method.upper(), path]
    if query:
        lines.append(canonical_query(query))
    lines.append(";".join(names))
    lines.append("\n".join(sorted(f"{enc(n)}:{enc(lowered[n])}" for n in names)))
    text = "\n".join(lines) + "\n"
    if body:
        text += enc(body)
    return text


def canonical_host_request(method: str, path: str, query: Sequence[tuple[str, str]], host: str, body: str) -> str:
    """:func:`canonical_request` for the one signed header the client sends, ``host``, in one pass.

    It holds no timestamp, so a call builds it once and signs every attempt over it.
    """
    query_line = f"{canonical_query(query)}\n" if query else ""
    text = f"{method.upper()}\n{path}\n{query_line}host\nhost:{enc(host)}\n"
    return text + enc(body) if body else text


def signing_prefix(ak: str, timestamp: str) -> str:
    """The ``Authorization`` value's start: what the signing key is derived from."""
    return f"auth-v2/{ak}/{timestamp}/host"


def signing_key(sk: str | Secret, prefix: str) -> tuple[Any, Any]:
    """The derived key of ``prefix`` (see :func:`signing_prefix`), primed for :func:`authorization`;
    cached, so every request of the same second reuses it."""
    # The SK is revealed inline, never bound to a local that a traceback would record.
    return _keyed_hashes(sk.reveal() if isinstance(sk, Secret) else sk, prefix)


def authorization(prefix: str, key: tuple[Any, Any], canonical: bytes) -> str:
    """The ``Authorization`` value of the UTF-8 ``canonical`` request, signed with ``key``."""
    return f"{prefix}/{_hmac_hex(key, canonical)}"


_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))
_BLOCK = hashlib.sha256().block_size


@functools.lru_cache(maxsize=64)
def _keyed_hashes(sk: str, prefix: str) -> tuple[Any, Any]:
    """The primed HMAC hashes (:func:`_primed_hashes`) of the signing key for ``prefix``.

    The signing key depends only on SK, AK, timestamp and signed headers, all in
    ``prefix``: with one-second timestamps every request of the same second reuses it.
    """
    return _primed_hashes(hmac.new(sk.encode(), prefix.encode(), hashlib.sha256).hexdigest().encode())


def _primed_hashes(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hashes, already fed ``key``'s pads (RFC 2104).

    Copying them per message skips deriving the pads again for every request.
    """
    if len(key) > _BLOCK:  # the signing key's 64 hex digits fill SHA-256's block exactly
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD))


def _hmac_hex(keyed: tuple[Any, Any], message: bytes) -> str:
    """HMAC-SHA256 of ``message`` from the primed hashes of :func:`_keyed_hashes`, in hex."""
    inner, outer = keyed[0].copy(), keyed[1].copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.hexdigest()  # type: ignore[no-any-return]


@attrs.frozen
class SignedRequest:
    """The ``Authorization`` value and the canonical request it was computed over."""

    authorization: str
    canonical_request: str = attrs.field(repr=False)


def sign(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    host: str,
    body: str,
    ak: str,
    sk: str | Secret,
    timestamp: str,
) -> SignedRequest:
    """Sign one request attempt; ``host`` must be the ``Host`` header sent, byte for byte.

    Text that UTF-8 cannot encode (a lone surrogate) is a :class:`ValidationError` naming
    the argument; the client refuses such values before it gets here.
    """
    prefix = signing_prefix(ak, timestamp)
    try:
        canonical = canonical_host_request(method, path, query, host, body)
        signed = authorization(prefix, signing_key(sk, prefix), canonical.encode())
    except UnicodeEncodeError:
        pass
    else:
        return SignedRequest(signed, canonical)
    # Raised outside the handler, so no UnicodeEncodeError (whose repr quotes the text,
    # the SK included) hangs on as the context.
    raise _unencodable(method=method, path=path, query=query, host=host, body=body, ak=ak, sk=sk, timestamp=timestamp)


def _unencodable(*, query: Sequence[tuple[str, str]], sk: str | Secret, **texts: str) -> ValidationError:
    """The error naming the first argument that UTF-8 cannot encode."""
    texts["query"] = "".join(part for pair in query for part in pair)
    texts["sk"] = sk if isinstance(sk, str) else ""  # a Secret was checked when it was made
    for field, text in texts.items():
        try:
            text.encode()
        except UnicodeEncodeError:
            return ValidationError(field, "cannot be encoded as UTF-8 (it holds a lone surrogate)")
    return ValidationError("request", "cannot be encoded as UTF-8")
