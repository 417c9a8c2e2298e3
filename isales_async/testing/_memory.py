"""The memory transport: a client's requests answered by a fake server in process, no sockets.

``ISalesClient(..., transport=FakeISales().transport())`` sends every signed request
straight to the fake's :meth:`~isales_async.testing.FakeISales.dispatch`, as httpx's
``MockTransport`` does for httpx users: no port, no server to start, no event-loop
server task. What a socket would show is mapped to the errors the client raises over
one: a dropped or truncated connection is a
:class:`~isales_async.ConnectionLostError`, a reply later than the attempt's timeouts a
:class:`~isales_async.ReadTimeoutError`, a body (compressed ones decoded as they
arrive) over the cap a :class:`~isales_async.ResponseTooLargeError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

import anyio
import anyio.lowlevel
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from .._errors import ConnectionLostError, ReadTimeoutError, ResponseTooLargeError
from .._transport import Timeouts, TransportRequest, TransportResponse
from ._reply import Ending, Reply, brotli_module

__all__ = ["MemoryTransport"]


class _Dispatcher(Protocol):
    async def dispatch(self, method: str, target: str, headers: Mapping[str, str], raw_body: bytes) -> Reply: ...


def _wait_limit(timeouts: Timeouts) -> float | None:
    """How long a reply may take: the attempt's total, or its read timeout when shorter
    (over a socket, that one bounds the wait for the first byte too)."""
    limits = [limit for limit in (timeouts.total, timeouts.read) if limit is not None]
    return min(limits) if limits else None


class MemoryTransport:
    """A :class:`~isales_async.Transport` into a fake server's request handling, in process.

    Get one with :meth:`FakeISales.transport() <isales_async.testing.FakeISales.transport>`.
    Opening and closing it are no-ops: there is no connection to make.
    """

    def __init__(self, server: _Dispatcher) -> None:
        self._server = server

    def __repr__(self) -> str:
        return f"MemoryTransport({type(self._server).__name__})"

    async def open(self) -> None:
        """Nothing to open."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def check_usable(self, endpoint: str) -> None:
        """Always usable: the fake is in this process."""

    async def send(self, request: TransportRequest) -> TransportResponse:
        """Hand ``request`` to the fake and return its reply as a socket would deliver it."""
        target = yarl.URL(request.url, encoded=True).raw_path_qs
        try:
            with anyio.fail_after(_wait_limit(request.timeouts)):
                # As over a socket, a request takes a turn of the event loop to arrive:
                # callers started together are all under way before the first is answered.
                await anyio.lowlevel.checkpoint()
                reply = await self._server.dispatch(
                    request.method, target, CIMultiDictProxy(CIMultiDict(request.headers)), request.body or b""
                )
        except TimeoutError:
            raise ReadTimeoutError(f"{request.endpoint}: no response in time") from None
        if reply.ending is not Ending.COMPLETE:
            raise ConnectionLostError(
                f"{request.endpoint}: connection lost: the server dropped the connection "
                f"({'after half the body' if reply.ending is Ending.TRUNCATE else 'before answering'})"
            )
        body = _decoded(reply, request.endpoint, request.max_response_bytes)
        headers = CIMultiDict(reply.headers)
        if reply.encoding is not None:
            headers["Content-Encoding"] = reply.encoding
        return TransportResponse(reply.status, CIMultiDictProxy(headers), body)


def _decoded(reply: Reply, endpoint: str, cap: int) -> bytes:
    """The reply's body as the client reads it: decoded, and refused past ``cap`` bytes
    without ever holding more than that."""
    chunks: list[bytes] = []
    size = 0
    for chunk in _decode(reply.pieces, reply.encoding, cap):
        size += len(chunk)
        if size > cap:
            what = "decoded response" if reply.encoding is not None else f"response of {len(reply.body)} bytes"
            raise ResponseTooLargeError(f"{what} exceeds the {cap}-byte cap", endpoint=endpoint)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(pieces: Iterable[bytes], encoding: str | None, cap: int) -> Iterator[bytes]:
    """The decoded chunks of ``pieces``, each at most about ``cap + 1`` bytes (a bomb
    never inflates further than the cap)."""
    if encoding is None:
        yield from pieces
    elif encoding == "br":
        decompressor = brotli_module().Decompressor()
        for piece in pieces:
            yield decompressor.process(piece)
    else:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
        for piece in pieces:
            data = piece
            while data:
                yield inflater.decompress(data, cap + 1)
                data = inflater.unconsumed_tail
