"""The default transport: one aiohttp ``ClientSession``, its pool, TLS, proxy and body bounds.

aiohttp exceptions are translated to our hierarchy in one place, :func:`translated`;
cancellation passes through untouched.
"""

from __future__ import annotations

import asyncio
import base64
import ssl as _ssl
import time
import urllib.request
import warnings
from collections.abc import Mapping

import aiohttp
import yarl

from ._clock import SystemClock
from ._errors import (
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    ReadTimeoutError,
    ResponseTooLargeError,
    TLSError,
    TransportError,
)
from ._limits import Deadlines
from ._transport import Timeouts, TransportRequest, TransportResponse

__all__ = ["AiohttpTransport", "proxy_from_env"]


#: What :func:`translated` maps; anything else (cancellation too) passes through untouched.
# Before 3.11, asyncio.TimeoutError (what aiohttp raises for a total timeout) is not the builtin TimeoutError.
_TRANSLATED = (aiohttp.ClientError, OSError, TimeoutError, asyncio.TimeoutError)


def translated(exc: BaseException, endpoint: str) -> TransportError:
    """The most specific error we can name for an aiohttp or socket failure (one of :data:`_TRANSLATED`)."""
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return TLSError(f"{endpoint}: TLS failed: {exc}{_plain_http_hint(exc)}")
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return ConnectError(f"{endpoint}: could not connect: {exc}")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return ReadTimeoutError(f"{endpoint}: no response in time")
    return ConnectionLostError(f"{endpoint}: connection lost: {type(exc).__name__}: {exc}")


# What OpenSSL reports when the other end answers a TLS handshake in plain HTTP.
_PLAIN_HTTP_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
)


def _plain_http_hint(exc: BaseException) -> str:
    """Why a handshake failed, in words, when the port speaks plain HTTP; else nothing."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _ssl.SSLError) and getattr(cause, "reason", None) in _PLAIN_HTTP_REASONS:
            return (
                "; the server answered in plain HTTP, not TLS: use its https port, "
                "or an http:// base URL if it really serves plain HTTP"
            )
        cause = getattr(cause, "os_error", None) or cause.__cause__
    return ""


def proxy_from_env(url: yarl.URL) -> tuple[yarl.URL | None, Mapping[str, str] | None]:
    """The proxy ``HTTP_PROXY``/``HTTPS_PROXY`` name for ``url`` (``NO_PROXY`` honoured), and
    the headers for the proxy (its credentials, from the proxy URL); ``(None, None)`` to
    connect directly."""
    if url.host is not None and urllib.request.proxy_bypass(url.host):
        return None, None
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy:
        return None, None
    proxy_url = yarl.URL(proxy if "://" in proxy else f"http://{proxy}")
    if proxy_url.user is None:
        return proxy_url, None
    credentials = base64.b64encode(f"{proxy_url.user}:{proxy_url.password or ''}".encode()).decode("ascii")
    return proxy_url.with_user(None), {"Proxy-Authorization": f"Basic {credentials}"}


_URL_CACHE_SIZE = 1024
#: The clock of the total timeouts: aiohttp's, the event loop's monotonic time.
_CLOCK = SystemClock()


def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """What aiohttp enforces of ``timeouts``: connecting and reading. The total is the
    transport's own (:class:`AiohttpTransport`): aiohttp's timer for it, a loop timer and
    a timer context a request, cost about 4% of a writeback batch's CPU."""
    return aiohttp.ClientTimeout(total=None, connect=timeouts.connect, sock_read=timeouts.read)


class AiohttpTransport:
    """Requests over one aiohttp ``ClientSession``: created on :meth:`open` and closed on
    :meth:`aclose`, or the injected ``session``, which it then does not close.

    Each request's total timeout is watched here, with one alarm for every request in
    flight (:class:`~isales_async._limits.Deadlines`): when it passes, the request is
    cancelled and fails with :class:`~isales_async.ReadTimeoutError`, as aiohttp's own
    total timeout would.

    Args:
        base_url: the server's URL (its scheme decides how proxy credentials travel).
        ssl: the TLS context, ``True`` for the default verification, ``False`` for none.
        session: an aiohttp session to use instead of creating one.
        max_concurrency: the client's limiter; the pool it creates is at least as large.
        trust_env: take the proxy from the environment, once, here.
    """

    def __init__(
        self,
        base_url: yarl.URL,
        *,
        ssl: _ssl.SSLContext | bool,
        session: aiohttp.ClientSession | None,
        max_concurrency: int,
        trust_env: bool,
    ) -> None:
        # Read once, as httpx does: every request of a client goes to the same origin.
        self._proxy, proxy_headers = proxy_from_env(base_url) if trust_env else (None, None)
        # aiohttp sends proxy_headers on a CONNECT only (https); a plain-http request carries them itself.
        self._proxy_headers = proxy_headers if base_url.scheme == "https" else None
        self._request_proxy_headers = dict(proxy_headers or {}) if base_url.scheme == "http" else {}
        self._ssl = ssl
        self._max_concurrency = max_concurrency
        self._injected = session
        if session is not None and session.connector is not None and 0 < session.connector.limit < max_concurrency:
            warnings.warn(
                f"the injected session allows {session.connector.limit} connections, fewer than max_concurrency="
                f"{max_concurrency}: requests would queue inside aiohttp, where their timeouts already run",
                stacklevel=3,
            )
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}
        self._urls: dict[str, yarl.URL] = {}
        self._totals = Deadlines(_CLOCK)

    async def open(self) -> None:
        if self._session is None:
            self._totals = Deadlines(_CLOCK)  # perhaps another event loop: an alarm of the last one never rings
            if self._injected is not None:
                self._session = self._injected
            else:
                # The pool is at least as large as our limiter, so requests queue in the
                # limiter (where timeouts have not started) and never hidden in aiohttp's pool.
                connector = aiohttp.TCPConnector(limit=self._max_concurrency, limit_per_host=self._max_concurrency)
                self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and session is not self._injected:
            await session.close()

    def check_usable(self, endpoint: str) -> None:
        self._open_session(endpoint)

    def _open_session(self, endpoint: str) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            raise ClientClosedError(f"{endpoint}: the client is not open: use 'async with ISalesClient(...)'")
        if session.closed:
            raise ClientClosedError(f"{endpoint}: the injected aiohttp session is closed")
        return session

    def _client_timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        """The aiohttp timeout of ``timeouts``, built once per distinct value (the hot path)."""
        converted = self._timeouts.get(timeouts)
        if converted is None:
            converted = self._timeouts[timeouts] = _client_timeout(timeouts)
        return converted

    def _url(self, url: str) -> yarl.URL:
        """``url`` as an encoded ``yarl.URL``, kept for the next request to it: aiohttp reads
        its host, port and path, which a new object would compute again."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()  # one page of writes' unique paths must not grow it forever
            parsed = self._urls[url] = yarl.URL(url, encoded=True)
        return parsed

    async def send(self, request: TransportRequest) -> TransportResponse:
        session = self._open_session(request.endpoint)
        headers = {**request.headers, **self._request_proxy_headers} if self._request_proxy_headers else request.headers
        total = request.timeouts.total
        guard = self._totals.watch(time.monotonic() + total, asyncio.current_task()) if total is not None else None
        # Awaited, read and released in one try, not two context managers: the hot path.
        try:
            response = await session.request(
                request.method,
                self._url(request.url),
                data=request.body,
                headers=headers,
                timeout=self._client_timeout(request.timeouts),
                ssl=self._ssl,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
                allow_redirects=False,
            )
            try:
                body = await _read_body(response, request.endpoint, request.max_response_bytes)
            finally:
                response.release()
        except _TRANSLATED as exc:
            raise translated(exc, request.endpoint) from exc
        except asyncio.CancelledError:
            if guard is None or not guard.caught():
                raise
            raise ReadTimeoutError(f"{request.endpoint}: no response in time") from None
        finally:
            if guard is not None:
                guard.disarm()
        return TransportResponse(response.status, response.headers, body)


async def _read_body(response: aiohttp.ClientResponse, endpoint: str, cap: int) -> bytes:
    """The decoded body, at most ``cap`` bytes of it; a larger one drops the connection.

    A plain body with a ``Content-Length`` is checked before it is read (the fast
    path). A compressed body's ``Content-Length`` counts compressed bytes, so it, and
    a body without a length, is counted as aiohttp decodes it, chunk by chunk (aiohttp
    3.13.3 and later inflate at most 256 KiB per step), and abandoned past the cap.
    """
    length = response.content_length
    plain = response.headers.get("Content-Encoding", "identity").strip().lower() == "identity"
    if length is not None and plain:
        if length > cap:
            response.close()
            raise ResponseTooLargeError(f"response of {length} bytes exceeds the {cap}-byte cap", endpoint=endpoint)
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > cap:
            response.close()  # never back to the pool with the rest of the body unread
            raise ResponseTooLargeError(f"decoded response exceeds the {cap}-byte cap", endpoint=endpoint)
        chunks.append(chunk)
    return b"".join(chunks)
