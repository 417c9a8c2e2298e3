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
from urllib.parse import quote

import attrs

from ._errors import ValidationError
from ._secret import Secret

__all__ = ["SignedRequest", "canonical_request", "enc", "format_timestamp", "sign"]

_UNRESERVED = "-._~"


@functools.lru_cache(maxsize=4096)
def _enc_short(value: str) -> str:
    return quote(value, safe=_UNRESERVED)


def enc(value: str) -> str:
    """Percent-encode every UTF-8 byte except ``A-Z a-z 0-9 - . _ ~`` (upper-case hex)."""
    # Names, page numbers and the host repeat on every request: those are cached; bodies are not.
    return _enc_short(value) if len(value) <= 64 else quote(value, safe=_UNRESERVED)


def format_timestamp(when: _dt.datetime) -> str:
    """Render ``when`` as the UTC, second-precision ``2024-01-01T00:00:00Z`` the scheme uses."""
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """``enc(k)=enc(v)`` pairs, sorted as whole strings, joined by ``&``."""
    return "&".join(sorted(f"{enc(k)}={enc(v)}" for k, v in query))


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


@functools.lru_cache(maxsize=64)
def _signing_key(sk: str, prefix: str) -> bytes:
    # Depends only on SK, AK, timestamp and signed headers: with one-second timestamps
    # every request of the same second reuses it.
    return hmac.new(sk.encode(), prefix.encode(), hashlib.sha256).hexdigest().encode()


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
    headers = {"host": host}
    signed_headers = "host"
    prefix = f"auth-v2/{ak}/{timestamp}/{signed_headers}"
    try:
        canonical = canonical_request(method, path, query, headers, body)
        # The SK is revealed inline, never bound to a local that a traceback would record.
        signature = hmac.new(
            _signing_key(sk.reveal() if isinstance(sk, Secret) else sk, prefix), canonical.encode(), hashlib.sha256
        ).hexdigest()
    except UnicodeEncodeError:
        pass
    else:
        return SignedRequest(f"{prefix}/{signature}", canonical)
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
