"""The transport seam: what the session needs to send one prepared, signed request; no I/O.

The session signs, limits and retries; a :class:`Transport` only carries one request to
the server and brings its response back, translating its own failures into the
client's :class:`~isales_async.TransportError` branch. The default is
:class:`isales_async._aiohttp.AiohttpTransport`; ``isales_async.testing`` has a memory
transport that answers from the fake server in process, without sockets, as httpx's
``MockTransport`` does for httpx users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

from ._validation import check_number, field_check

__all__ = ["Timeouts", "Transport", "TransportRequest", "TransportResponse"]


@attrs.frozen
class Timeouts:
    """Per-attempt timeouts in seconds; they start once the concurrency limiter is acquired.

    Args:
        connect: to open a connection (a failure here is provably "not sent").
        read: between bytes of the response once the request is sent; off by default,
            as in aiohttp, since ``total`` bounds the attempt anyway and the per-chunk
            timer measured about 7% of throughput.
        total: the whole attempt.
    """

    connect: float | None = attrs.field(default=10.0, validator=field_check(check_number, optional=True, positive=True))
    read: float | None = attrs.field(default=None, validator=field_check(check_number, optional=True, positive=True))
    total: float | None = attrs.field(default=60.0, validator=field_check(check_number, optional=True, positive=True))


@attrs.frozen
class TransportRequest:
    """One attempt, ready for the wire: the exact bytes that were signed.

    Args:
        endpoint: the endpoint's name, for error messages.
        method: ``GET`` or ``POST``.
        url: the absolute, already percent-encoded URL (nothing may re-quote it).
        headers: ``Host``, ``Authorization`` and ``Content-Type``, as signed.
        body: the JSON body, or ``None`` for a request without one.
        timeouts: the attempt's timeouts.
        max_response_bytes: the cap on the decoded body; a larger one raises
            :class:`~isales_async.ResponseTooLargeError` without being held in memory.
    """

    endpoint: str
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeouts: Timeouts
    max_response_bytes: int


@attrs.frozen
class TransportResponse:
    """What came back: the status, the headers (looked up case-insensitively, as in
    ``multidict.CIMultiDict``) and the decoded body, at most ``max_response_bytes``."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Transport(Protocol):
    """Carries prepared requests to the server; the client opens it, sends through it and closes it.

    ``send`` raises the client's transport errors: :class:`~isales_async.ConnectError`
    when the request provably never left, :class:`~isales_async.ConnectionLostError` or
    :class:`~isales_async.ReadTimeoutError` once it may have, and
    :class:`~isales_async.ResponseTooLargeError` for a body over the cap. Cancellation
    passes through. The session retries by these types, so a transport that raises
    anything else turns a retryable failure into a final one.
    """

    async def open(self) -> None:
        """Get ready to send (again, after :meth:`aclose`)."""

    async def aclose(self) -> None:
        """Release what :meth:`open` acquired (connections it owns)."""

    def check_usable(self, endpoint: str) -> None:
        """Raise :class:`~isales_async.ClientClosedError` when nothing can be sent now; checked
        before an attempt counts as sent."""

    async def send(self, request: TransportRequest) -> TransportResponse:
        """Send one request and return its response."""
        ...
