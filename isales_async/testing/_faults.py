"""The fake's faults: one scripted (:class:`Fault`), or random (:class:`Chaos`), and the
compressed bodies a fault can answer with."""

from __future__ import annotations

import enum
import random
import struct
import zlib
from collections.abc import Sequence

import attrs

from ._reply import brotli_module

__all__ = ["SHORT_PAGE_NUM", "Capacity", "Chaos", "Fault", "FaultKind", "PagingQuirk", "compressed_body"]


class FaultKind(enum.Enum):
    """How a scripted fault disturbs one request."""

    STATUS = "status"  # answer ``status`` (with ``retry_after``), without processing
    RESET_BEFORE = "reset_before"  # drop the connection without processing
    RESET_AFTER = "reset_after"  # process the request, then drop the connection
    TRUNCATE = "truncate"  # process it, send half the body, then drop the connection
    BODY = "body"  # process it, then answer 200 with ``body`` instead of the envelope
    DELAY = "delay"  # wait ``delay`` seconds, then process normally
    HANG = "hang"  # wait until the server is closed or released, then process
    COMPRESSED = "compressed"  # process it, then answer with the body compressed as ``encoding``


class PagingQuirk(enum.Enum):
    """How a misbehaving server pages; set one with ``FakeISales(paging=...)`` or ``server.paging``.

    It applies to every paged request of the paged endpoints (queryOBSResultCode,
    queryBusinessResults, queryOBSResults, and callresult when the body names a page).
    """

    PER_PAGE_TOTAL = "per_page_total"  # totalCount is the number of items on the page itself
    IGNORE_PAGE_NUM = "ignore_page_num"  # every pageNum is answered with page 1
    SHORT_PAGE_ONCE = "short_page_once"  # the first answer to page 2 lacks its last item (when full, 2+ items)
    SHORT_PAGE_ALWAYS = "short_page_always"  # every answer to page 2 lacks its last item (when full, 2+ items)
    TOTAL_MISSING = "total_missing"  # no totalCount key
    TOTAL_NULL = "total_null"  # "totalCount": null
    TOTAL_UNKNOWN = "total_unknown"  # "totalCount": -1


#: The page that the short-page quirks shorten: the middle of a list of three pages or more.
SHORT_PAGE_NUM = 2


@attrs.define
class Fault:
    """One scripted fault, applied to the next ``times`` requests matching ``endpoint``."""

    kind: FaultKind
    endpoint: str | None = None
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    encoding: str = "gzip"
    padding: int = 0
    chunked: bool = False

    @classmethod
    def status_code(
        cls, status: int, *, retry_after: str | None = None, endpoint: str | None = None, times: int = 1
    ) -> Fault:
        return cls(FaultKind.STATUS, endpoint, times, status=status, retry_after=retry_after)

    @classmethod
    def reset(cls, *, after: bool, endpoint: str | None = None, times: int = 1) -> Fault:
        return cls(FaultKind.RESET_AFTER if after else FaultKind.RESET_BEFORE, endpoint, times)

    @classmethod
    def truncated(cls, *, endpoint: str | None = None, times: int = 1) -> Fault:
        return cls(FaultKind.TRUNCATE, endpoint, times)

    @classmethod
    def raw_body(
        cls, body: bytes, *, content_type: str = "application/json", endpoint: str | None = None, times: int = 1
    ) -> Fault:
        return cls(FaultKind.BODY, endpoint, times, body=body, content_type=content_type)

    @classmethod
    def slow(cls, delay: float, *, endpoint: str | None = None, times: int = 1) -> Fault:
        return cls(FaultKind.DELAY, endpoint, times, delay=delay)

    @classmethod
    def hang(cls, *, endpoint: str | None = None, times: int = 1) -> Fault:
        return cls(FaultKind.HANG, endpoint, times)

    @classmethod
    def compressed(
        cls,
        *,
        encoding: str = "gzip",
        padding: int = 0,
        chunked: bool = False,
        endpoint: str | None = None,
        times: int = 1,
    ) -> Fault:
        """Answer with the envelope compressed as ``encoding`` (``gzip``, ``deflate``, or ``br``
        when brotli is installed), followed once decoded by ``padding`` spaces (valid JSON).

        It goes with its small, compressed ``Content-Length``, or ``chunked`` without one.
        A GiB of padding is a decompression bomb of about a MiB on the wire, built
        without compressing a GiB (see :func:`compressed_body`).
        """
        if encoding not in ("gzip", "deflate", "br"):
            raise ValueError(f"encoding must be gzip, deflate or br, got {encoding!r}")
        if encoding == "br":
            brotli_module()
        return cls(FaultKind.COMPRESSED, endpoint, times, encoding=encoding, padding=padding, chunked=chunked)


_PAD_BLOCK = b" " * (1 << 20)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime
_ZLIB_HEADER = b"\x78\xda"
_FINAL_EMPTY_BLOCK = b"\x03\x00"


def _deflated(data: bytes) -> bytes:
    """Raw deflate blocks of ``data`` ending in a full flush: byte-aligned and independent of
    anything before them, so they can be repeated or concatenated as they are."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def compressed_body(body: bytes, padding: int, encoding: str) -> list[bytes]:
    """``body`` followed by ``padding`` spaces, compressed as ``encoding``, in pieces.

    For gzip and deflate each whole MiB of padding is the same precomputed piece (the same
    ``bytes`` object, so a GiB takes a list of a thousand references), and the checksum
    in the trailer is computed, not a compression pass over the whole.
    """
    blocks, rest = divmod(padding, len(_PAD_BLOCK))
    if encoding == "br":
        compressor = brotli_module().Compressor(quality=1)
        pieces = [compressor.process(body)]
        pieces.extend(compressor.process(_PAD_BLOCK) for _ in range(blocks))
        return [*pieces, compressor.process(b" " * rest), compressor.finish()]
    tail = b" " * rest
    checksum = zlib.crc32 if encoding == "gzip" else zlib.adler32
    check = checksum(body, 0 if encoding == "gzip" else 1)
    for _ in range(blocks):
        check = checksum(_PAD_BLOCK, check)
    check = checksum(tail, check)
    piece = _deflated(_PAD_BLOCK)
    middle = [_deflated(body), *([piece] * blocks), _deflated(tail), _FINAL_EMPTY_BLOCK]
    if encoding == "gzip":
        return [_GZIP_HEADER, *middle, struct.pack("<II", check, (len(body) + padding) & 0xFFFFFFFF)]
    return [_ZLIB_HEADER, *middle, struct.pack(">I", check)]


@attrs.define
class Chaos:
    """Random faults: each request meets one of ``faults`` with probability ``rate``."""

    rate: float
    faults: Sequence[Fault]
    rng: random.Random = attrs.field(factory=lambda: random.Random(0))

    def pick(self, endpoint: str) -> Fault | None:
        candidates = [f for f in self.faults if f.endpoint in (None, endpoint)]
        if candidates and self.rng.random() < self.rate:
            return self.rng.choice(candidates)
        return None


@attrs.define
class Capacity:
    """A server that can process only ``limit`` requests of ``endpoint`` at once.

    Set it with ``FakeISales(capacity=Capacity(8))`` or ``server.capacity = ...``. A request
    that arrives while ``limit`` others of the endpoint are being processed is refused,
    unprocessed, with ``status`` (429, or 503) and ``retry_after`` when given: what a
    tenant's flow control does to a client that sends too much at once. With
    ``endpoint=None`` every endpoint has its own ``limit``. ``refused`` counts the refusals.
    The requests of an endpoint overlap only while the server takes time over each (its
    ``latency``, or a ``slow`` fault).
    """

    limit: int
    endpoint: str | None = "callBusiResult"
    status: int = 429
    retry_after: str | None = None
    refused: int = 0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"limit must be an integer of at least 0, got {self.limit!r}")
        if self.status not in (429, 503):
            raise ValueError(f"status must be 429 or 503, got {self.status!r}")

    def covers(self, endpoint: str) -> bool:
        return self.endpoint in (None, endpoint)

    def refuses(self, in_flight: int) -> bool:
        """Whether a request that finds ``in_flight`` others being processed is refused (and counted)."""
        if in_flight < self.limit:
            return False
        self.refused += 1
        return True
