"""The one place that does I/O: limiter, signing each attempt, sending, retrying, hooks.

Everything it decides is delegated to pure modules: :mod:`._signing` signs,
:mod:`._envelope` maps a response to data or an error, :mod:`._retry` decides whether
and when to try again. aiohttp exceptions are translated to our hierarchy in one place,
:func:`_translate_errors`; cancellation passes through untouched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl as _ssl
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp
import anyio
import attrs
import orjson
import yarl

from ._clock import Clock, SystemClock
from ._endpoints import Endpoint
from ._envelope import decipher
from ._errors import (
    ConnectError,
    ConnectionLostError,
    ISalesError,
    OutcomeUnknownError,
    ReadTimeoutError,
    ResponseTooLargeError,
    TLSError,
    ValidationError,
)
from ._hooks import Event, GaveUp, Hook, RequestSent, ResponseReceived, RetryScheduled, log_event, logger
from ._retry import Failure, RetryBudget, RetryPolicy, classify
from ._signing import enc, format_timestamp, sign
from ._validation import check_path_param

__all__ = ["RouteLimit", "Session", "Timeouts"]

API_PREFIX = "/rest/isales/v1/openapi/campaigns"


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

    connect: float | None = 10.0
    read: float | None = None
    total: float | None = 60.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


@attrs.frozen
class RouteLimit:
    """A per-endpoint flow limit: ``concurrency`` in flight and at most ``concurrency``
    starts in any window longer than ``interval`` seconds."""

    concurrency: int
    interval: float


class _RouteGate:
    def __init__(self, limit: RouteLimit, clock: Clock) -> None:
        self._limiter = anyio.CapacityLimiter(limit.concurrency)
        self._starts: collections.deque[float] = collections.deque(maxlen=limit.concurrency)
        self._limit = limit
        self._clock = clock
        self._lock = anyio.Lock()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._limiter:
            async with self._lock:
                while len(self._starts) == self._limit.concurrency:
                    wait = self._starts[0] + self._limit.interval - self._clock.monotonic()
                    if wait < 0:
                        break
                    # "More than" the interval: a hair past it, never exactly on it.
                    await self._clock.sleep(wait + 0.001)
                self._starts.append(self._clock.monotonic())
            yield


@contextlib.contextmanager
def _translate_errors(endpoint: str) -> Iterator[None]:
    """Map aiohttp and socket failures to the most specific error we can name."""
    try:
        yield
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
        raise TLSError(f"{endpoint}: TLS failed: {exc}") from exc
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise ConnectError(f"{endpoint}: could not connect: {exc}") from exc
    except TimeoutError as exc:
        raise ReadTimeoutError(f"{endpoint}: no response in time") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionLostError(f"{endpoint}: connection lost: {type(exc).__name__}: {exc}") from exc


@attrs.frozen
class _Prepared:
    endpoint: Endpoint
    path: str
    url: yarl.URL
    query: Sequence[tuple[str, str]]
    body_text: str
    body_bytes: bytes | None


class Session:
    """Signed, retried, limited requests over one aiohttp ``ClientSession``.

    Owned by :class:`isales_async.ISalesClient`; resources call :meth:`request`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ak: str,
        sk: str,
        vdn_id: int,
        max_concurrency: int,
        timeouts: Timeouts,
        retry: RetryPolicy,
        ssl: _ssl.SSLContext | bool,
        session: aiohttp.ClientSession | None,
        hooks: Sequence[Hook] | None,
        clock: Clock | None,
        max_response_bytes: int,
        route_limits: Mapping[str, RouteLimit],
        retry_budget: RetryBudget | None,
    ) -> None:
        url = yarl.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValidationError("base_url", f"must be an http(s) URL with a host, got {base_url!r}")
        if url.scheme == "http":
            warnings.warn(
                f"base_url {url.host_port_subcomponent} uses plain http: the signed requests and "
                "their data travel unencrypted",
                stacklevel=3,
            )
        self._origin = url.origin()
        self._prefix = url.raw_path.rstrip("/") + f"{API_PREFIX}/{vdn_id}/"
        self._host = url.host_port_subcomponent or ""
        self._ak = ak
        self._sk = sk
        self._max_concurrency = max_concurrency
        self.timeouts = timeouts
        self._default_timeout = timeouts.to_aiohttp()
        self.retry = retry
        self._ssl = ssl
        self._injected = session
        if session is not None and session.connector is not None and 0 < session.connector.limit < max_concurrency:
            warnings.warn(
                f"the injected session allows {session.connector.limit} connections, fewer than max_concurrency="
                f"{max_concurrency}: requests would queue inside aiohttp, where their timeouts already run",
                stacklevel=3,
            )
        self._session: aiohttp.ClientSession | None = session
        self._hooks: tuple[Hook, ...] = tuple(hooks) if hooks is not None else (log_event,)
        self._custom_hooks = self._hooks != (log_event,)
        self._stamp, self._stamp_second = "", -1
        self.clock: Clock = clock or SystemClock()
        self._max_response_bytes = max_response_bytes
        # asyncio's semaphore, not anyio's CapacityLimiter: the latter adds an event-loop
        # round trip to every acquire, which measured about 15% of throughput; aiohttp
        # ties us to asyncio anyway.
        self._limiter = asyncio.Semaphore(max_concurrency)
        self.in_flight = 0
        self._routes = {name: _RouteGate(limit, self.clock) for name, limit in route_limits.items()}
        self._budget = retry_budget if retry_budget is not None else RetryBudget()
        self._paused_until = 0.0

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._session is None:
            # The pool is at least as large as our limiter, so requests queue in the
            # limiter (where timeouts have not started) and never hidden in aiohttp's pool.
            connector = aiohttp.TCPConnector(limit=self._max_concurrency, limit_per_host=self._max_concurrency)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)

    async def close(self) -> None:
        if self._session is not None and self._session is not self._injected:
            await self._session.close()
        self._session = None if self._injected is None else self._injected

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    # -- requests --------------------------------------------------------------------

    def prepare(
        self,
        endpoint: Endpoint,
        path_params: Mapping[str, str | int],
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any] | None,
    ) -> _Prepared:
        """Build the exact path, URL and body bytes that are both signed and sent."""
        encoded = {name: enc(check_path_param(name, value)) for name, value in path_params.items()}
        path = self._prefix + endpoint.path.format(**encoded)
        raw_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in query)
        url = yarl.URL(f"{self._origin}{path}{'?' + raw_query if raw_query else ''}", encoded=True)
        body_bytes = orjson.dumps(body) if body is not None else None
        body_text = body_bytes.decode() if body_bytes is not None else ""
        return _Prepared(endpoint, path, url, tuple(query), body_text, body_bytes)

    async def request(
        self,
        endpoint: Endpoint,
        *,
        path_params: Mapping[str, str | int] | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Send one API call with retries and return the envelope's JSON object.

        ``on_send`` is called each time an attempt is about to go on the wire, after the
        limiter is acquired: a batch journals "this write may have reached the server"
        there, and knows that a write cancelled before it was never sent.
        """
        if self._session is None or self._session.closed:
            raise RuntimeError("the client is not open: use 'async with ISalesClient(...)'")
        prepared = self.prepare(endpoint, path_params or {}, query, body)
        policy = retry or self.retry
        aio_timeout = timeouts.to_aiohttp() if timeouts is not None else self._default_timeout
        route = self._routes.get(endpoint.name)
        started = self.clock.monotonic()
        self._budget.deposit()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with route.slot() if route is not None else contextlib.nullcontext():
                    return await self._send(prepared, attempt, aio_timeout, on_send)
            except ISalesError as exc:
                failure = classify(exc)
                retry_after = getattr(exc, "retry_after", None)
                if failure in (Failure.RATE_LIMITED, Failure.UNAVAILABLE) and retry_after:
                    self._pause(retry_after)
                decision = policy.decide(
                    attempt=attempt,
                    failure=failure,
                    write=endpoint.write,
                    elapsed=self.clock.monotonic() - started,
                    retry_after=retry_after,
                )
                if decision.retry and not self._budget.withdraw():
                    decision = attrs.evolve(decision, retry=False, reason="the client's retry budget is spent")
                error_text = f"{type(exc).__name__}: {exc}"
                if not decision.retry:
                    self._emit(GaveUp(endpoint.name, prepared.path, attempt, decision.reason, error_text))
                    if decision.unknown:
                        raise OutcomeUnknownError(
                            f"{endpoint.name} {prepared.path}: the write was sent but its outcome is "
                            f"unknown ({error_text}); it was not resent",
                            endpoint=endpoint.name,
                        ) from exc
                    raise
                self._emit(
                    RetryScheduled(endpoint.name, prepared.path, attempt, decision.delay, decision.reason, error_text)
                )
            await self.clock.sleep(decision.delay)

    def _pause(self, seconds: float) -> None:
        """Share a server's ``Retry-After``: no request of this client starts before it passes."""
        self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    async def _acquire_slot(self) -> None:
        """Wait out any shared pause, then take a limiter slot; never hold one while sleeping."""
        while True:
            wait = self._paused_until - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            await self._limiter.acquire()
            # A pause may have begun while we queued for the limiter.
            if self._paused_until <= self.clock.monotonic():
                return
            self._limiter.release()

    def _timestamp(self) -> str:
        """The signing timestamp, formatted once per second."""
        now = self.clock.wall()
        second = int(now.timestamp())
        if second != self._stamp_second:
            self._stamp, self._stamp_second = format_timestamp(now), second
        return self._stamp

    async def _send(
        self,
        prepared: _Prepared,
        attempt: int,
        client_timeout: aiohttp.ClientTimeout,
        on_send: Callable[[], None] | None,
    ) -> dict[str, Any]:
        endpoint = prepared.endpoint
        assert self._session is not None
        observed = self._observe_every_request()
        await self._acquire_slot()
        self.in_flight += 1
        try:
            signed = sign(
                method=endpoint.method,
                path=prepared.path,
                query=prepared.query,
                host=self._host,
                body=prepared.body_text,
                ak=self._ak,
                sk=self._sk,
                timestamp=self._timestamp(),
            )
            headers = {
                "Host": self._host,
                "Authorization": signed.authorization,
                "Content-Type": "application/json; charset=UTF-8",
            }
            if on_send is not None:
                on_send()
            if observed:
                self._emit(RequestSent(endpoint.name, endpoint.method, prepared.path, attempt))
            sent_at = self.clock.monotonic()
            with _translate_errors(endpoint.name):
                async with self._session.request(
                    endpoint.method,
                    prepared.url,
                    data=prepared.body_bytes,
                    headers=headers,
                    timeout=client_timeout,
                    ssl=self._ssl,
                    allow_redirects=False,
                ) as response:
                    body = await self._read_body(response, endpoint.name)
                    status, response_headers = response.status, response.headers
        finally:
            self.in_flight -= 1
            self._limiter.release()
        if observed:
            self._emit(
                ResponseReceived(endpoint.name, prepared.path, status, attempt, self.clock.monotonic() - sent_at)
            )
        return decipher(endpoint, status, response_headers, body, self.clock.wall())

    def _observe_every_request(self) -> bool:
        """Whether anyone listens to per-request events: a custom hook, or DEBUG logging.

        Retries and give-ups are always emitted; skipping the two per-request events
        when only a silent logger would see them keeps them off the hot path.
        """
        return self._custom_hooks or logger.isEnabledFor(logging.DEBUG)

    async def _read_body(self, response: aiohttp.ClientResponse, endpoint: str) -> bytes:
        cap = self._max_response_bytes
        length = response.content_length
        if length is not None:
            if length > cap:
                raise ResponseTooLargeError(f"response of {length} bytes exceeds the {cap}-byte cap", endpoint=endpoint)
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise ResponseTooLargeError(f"response exceeds the {cap}-byte cap", endpoint=endpoint)
            chunks.append(chunk)
        return b"".join(chunks)

    def _emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:  # a broken hook must not break the request it observes
                logger.exception("hook %r failed on %s", hook, type(event).__name__)
