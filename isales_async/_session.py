"""The one place that drives I/O: signing each attempt, sending, retrying, hooks.

Everything it decides is delegated: :mod:`._signing` signs, :mod:`._envelope` maps a
response to data or an error, :mod:`._retry` decides whether and when to try again (and
keeps the budget and the shared cool-down), :mod:`._limits` admits each attempt (the
client-wide and per-route limits, the cool-down waits, the call's deadline). The bytes travel
through a :class:`~isales_async.Transport` (:mod:`._aiohttp` by default), which
translates its own failures into our hierarchy; cancellation passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import orjson
import yarl

from ._clock import Clock, SystemClock
from ._endpoints import Endpoint
from ._envelope import SUCCESS, decipher
from ._errors import (
    BusinessError,
    ClientClosedError,
    DeadlineExceededError,
    HTTPStatusError,
    ISalesError,
    OutcomeUnknownError,
    ValidationError,
    WrongEventLoopError,
)
from ._hooks import (
    CallFinished,
    CallStarted,
    CoolDownStarted,
    Event,
    GaveUp,
    Hook,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    log_event,
    logger,
)
from ._limits import Admission, Deadline, RouteLimit, SharedLimits
from ._retry import RetryBudget, RetryPolicy, RetryState
from ._secret import Secret
from ._signing import enc, format_timestamp, sign
from ._transport import Timeouts, Transport, TransportRequest
from ._validation import check_path_param

__all__ = ["RouteLimit", "Session", "Timeouts"]

API_PREFIX = "/rest/isales/v1/openapi/campaigns"


def parse_base_url(base_url: str) -> yarl.URL:
    """``base_url`` as a URL the client can sign for: http(s), a host, a usable port, and
    nothing that would be dropped or leak (user info, query, fragment)."""
    if not isinstance(base_url, (str, yarl.URL)):
        raise ValidationError("base_url", f"must be a string, got {type(base_url).__name__}")
    try:
        url = yarl.URL(base_url)
        port = url.port
    except ValueError as exc:
        raise ValidationError("base_url", f"is not a valid URL ({exc}): {str(base_url)!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError("base_url", f"must be an http(s) URL with a host, got {str(base_url)!r}")
    host = url.host_port_subcomponent or ""
    if not host.isascii() or not host.isprintable() or " " in host:
        raise ValidationError("base_url", f"the host {url.host!r} is not a valid host name")
    if port == 0:
        raise ValidationError("base_url", "the port must be between 1 and 65535, got 0")
    if url.user is not None or url.password is not None:
        raise ValidationError("base_url", "must not carry user info: the client signs with the AK and SK")
    if url.raw_query_string or url.raw_fragment:
        raise ValidationError("base_url", "must not carry a query or a fragment")
    return without_api_path(url)


#: What a base URL copied from the API reference may end with: the client adds it itself.
_API_PATHS = (API_PREFIX, API_PREFIX.rsplit("/", 1)[0])


def without_api_path(url: yarl.URL) -> yarl.URL:
    """``url`` without a trailing API path (``/rest/isales/v1/openapi``, ``.../campaigns``),
    which the client adds to every request; a gateway's own prefix before it is kept."""
    path = url.raw_path.rstrip("/")
    for api_path in _API_PATHS:
        if path.endswith(api_path):
            return url.with_path(path[: -len(api_path)] or "/", encoded=True)
    return url


def _encode_body(endpoint: str, body: Mapping[str, Any]) -> bytes:
    """The JSON body; a value JSON cannot carry (a lone surrogate) is refused, naming its key."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        problem = str(exc)
    bad_key = next((key for key, value in body.items() if not _encodes(value)), "body")
    raise ValidationError(bad_key, f"the {endpoint} body cannot carry it: {problem}")


def _encodes(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


@attrs.frozen
class _Prepared:
    endpoint: Endpoint
    path: str
    url: str
    query: Sequence[tuple[str, str]]
    body_text: str
    body_bytes: bytes | None


class Session:
    """Signed, retried, limited requests over one :class:`~isales_async.Transport`.

    Owned by :class:`isales_async.ISalesClient`; resources call :meth:`request`.
    """

    def __init__(
        self,
        url: yarl.URL,
        *,
        ak: str,
        sk: Secret,
        vdn_id: int,
        max_concurrency: int,
        timeouts: Timeouts,
        retry: RetryPolicy,
        transport: Transport,
        hooks: Sequence[Hook] | None,
        clock: Clock | None,
        max_response_bytes: int,
        route_limits: Mapping[str, RouteLimit],
        retry_budget: RetryBudget | None,
        limits: SharedLimits | None = None,
    ) -> None:
        self._origin = str(url.origin())
        self._prefix = url.raw_path.rstrip("/") + f"{API_PREFIX}/{vdn_id}/"
        self._host = url.host_port_subcomponent or ""
        self._server = (url.host or "", url.port or 0)
        self._ak = ak
        self._sk = sk
        self._default_timeouts = timeouts
        self.retry = retry
        self._transport = transport
        self._open = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the client was opened in
        self._hooks: tuple[Hook, ...] = tuple(hooks) if hooks is not None else (log_event,)
        self._custom_hooks = self._hooks != (log_event,)
        self._stamp, self._stamp_second = "", -1
        self.clock: Clock = clock or SystemClock()
        self._max_response_bytes = max_response_bytes
        self.in_flight = 0
        self._retry_state = RetryState(retry_budget if retry_budget is not None else RetryBudget())
        self._admission = Admission(max_concurrency, route_limits, self.clock, self._retry_state, limits)

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Start taking requests (again, after :meth:`close`), opening the transport.

        The client belongs to the running event loop from here until :meth:`close`.
        """
        if not self._open:
            loop = asyncio.get_running_loop()
            if self._loop is not loop and self.in_flight == 0:
                # Reopened in a new loop (an asyncio.run per batch): the limit bound to the old one is replaced.
                self._admission.renew_limiter()
            self._loop = loop
        await self._transport.open()
        self._open = True

    async def close(self) -> None:
        """Stop taking requests and close the transport.

        From another event loop than the one that opened it, closing is best effort: a
        connection that belongs to that loop cannot be closed from this one, and is let go.
        """
        was_open, self._open = self._open, False
        if not was_open:
            return
        await self._admission.aclose()
        try:
            await self._transport.aclose()
        except RuntimeError:
            if self._loop is asyncio.get_running_loop():
                raise
            logger.warning("the client was closed from another event loop than its own: its connections are let go")

    def _check_open(self, endpoint: str) -> None:
        """:class:`ClientClosedError` when the client, or its transport, cannot send."""
        if not self._open:
            raise ClientClosedError(f"{endpoint}: the client is not open: use 'async with ISalesClient(...)'")
        self._transport.check_usable(endpoint)
        if self._loop is not asyncio.get_running_loop():
            raise WrongEventLoopError(
                f"{endpoint}: the client was opened in another event loop; open it (async with) in the loop that uses it"
            )

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
        url = f"{self._origin}{path}{'?' + raw_query if raw_query else ''}"
        body_bytes = _encode_body(endpoint.name, body) if body is not None else None
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
        on_retry: Callable[[RetryScheduled], None] | None = None,
    ) -> dict[str, Any]:
        """Send one API call with retries and return the envelope's JSON object.

        ``on_send`` is called each time an attempt is about to go on the wire, after the
        limiter is acquired: a batch journals "this write may have reached the server"
        there, and knows that a write cancelled before it was never sent. ``on_retry``
        sees this call's :class:`RetryScheduled` events as the hooks do: an adaptive
        batch learns of the 429s and 503s the session retries there.
        """
        self._check_open(endpoint.name)
        prepared = self.prepare(endpoint, path_params or {}, query, body)
        policy = retry or self.retry
        attempt_timeouts = timeouts or self._default_timeouts
        if self._custom_hooks:
            return await self._observed_call(prepared, policy, attempt_timeouts, on_send, on_retry)
        return await self._attempts(prepared, policy, attempt_timeouts, on_send, on_retry)

    async def _observed_call(
        self,
        prepared: _Prepared,
        policy: RetryPolicy,
        timeouts: Timeouts,
        on_send: Callable[[], None] | None,
        on_retry: Callable[[RetryScheduled], None] | None,
    ) -> dict[str, Any]:
        """The call's attempts between a :class:`CallStarted` and a :class:`CallFinished`
        event, for a custom hook; the attempts themselves run as they do unobserved."""
        endpoint = prepared.endpoint
        route = self._prefix + endpoint.path
        self._emit(CallStarted(endpoint.name, endpoint.method, prepared.path, route, *self._server, endpoint.write))
        sent = 0

        def count_send() -> None:
            nonlocal sent
            sent += 1
            if on_send is not None:
                on_send()

        try:
            data = await self._attempts(prepared, policy, timeouts, count_send, on_retry)
        except BaseException as exc:
            code = exc.code if isinstance(exc, BusinessError) else None
            unknown = isinstance(exc, OutcomeUnknownError)
            self._emit(CallFinished(endpoint.name, prepared.path, sent, code, unknown, type(exc).__name__))
            raise
        self._emit(CallFinished(endpoint.name, prepared.path, sent, SUCCESS, False, None))
        return data

    async def _attempts(
        self,
        prepared: _Prepared,
        policy: RetryPolicy,
        attempt_timeouts: Timeouts,
        on_send: Callable[[], None] | None,
        on_retry: Callable[[RetryScheduled], None] | None,
    ) -> dict[str, Any]:
        """Attempt the call until it succeeds or a decision gives up (see :meth:`request`)."""
        endpoint = prepared.endpoint
        started = self.clock.monotonic()
        deadline = started + policy.deadline if policy.deadline is not None else None
        self._retry_state.first_attempt()
        attempt = 0
        previous: ISalesError | None = None
        sent = False

        def mark_sent() -> None:
            nonlocal sent
            sent = True
            if on_send is not None:
                on_send()

        while True:
            attempt += 1
            sent = False
            guard = Deadline(self.clock, deadline) if deadline is not None else None
            try:
                with guard if guard is not None else contextlib.nullcontext():
                    async with self._admission.route_slot(endpoint.name, deadline):
                        return await self._send(prepared, attempt, attempt_timeouts, mark_sent, deadline)
            except asyncio.CancelledError:
                if guard is None or not guard.caught():
                    raise
                exc = self._deadline_passed(prepared, policy, sent=sent)
                self._emit(GaveUp(endpoint.name, prepared.path, attempt, "deadline", f"{type(exc).__name__}: {exc}"))
                raise exc from previous
            except DeadlineExceededError as exc:
                self._emit(GaveUp(endpoint.name, prepared.path, attempt, "deadline", f"{type(exc).__name__}: {exc}"))
                raise exc from previous
            except ISalesError as exc:
                previous = exc
                now = self.clock.monotonic()
                decision = self._retry_state.after_failure(
                    policy, exc, attempt=attempt, write=endpoint.write, now=now, elapsed=now - started
                )
                error_text = f"{type(exc).__name__}: {exc}"
                if decision.cool_down and isinstance(exc, HTTPStatusError):
                    self._emit(CoolDownStarted(endpoint.name, prepared.path, exc.status, decision.cool_down))
                if not decision.retry:
                    self._emit(GaveUp(endpoint.name, prepared.path, attempt, decision.reason, error_text))
                    if decision.unknown:
                        raise OutcomeUnknownError(
                            f"{endpoint.name} {prepared.path}: the write was sent but its outcome is "
                            f"unknown ({error_text}); it was not resent",
                            endpoint=endpoint.name,
                        ) from exc
                    raise
                scheduled = RetryScheduled(
                    endpoint.name, prepared.path, attempt, decision.delay, decision.reason, error_text
                )
                self._emit(scheduled)
                if on_retry is not None:
                    on_retry(scheduled)
            await self.clock.sleep(decision.delay)

    def _deadline_passed(self, prepared: _Prepared, policy: RetryPolicy, *, sent: bool) -> ISalesError:
        """The error of an attempt ended by the call's deadline: a write that had left is of
        unknown outcome (and never resent); anything else simply ran out of time."""
        name = prepared.endpoint.name
        if sent and prepared.endpoint.write:
            return OutcomeUnknownError(
                f"{name} {prepared.path}: the write was sent, and the call's {policy.deadline:g}s deadline "
                "passed before its answer; its outcome is unknown and it was not resent",
                endpoint=name,
            )
        where = "while its request was in flight" if sent else "before its request could be sent"
        return DeadlineExceededError(
            f"{name}: the call's {policy.deadline:g}s deadline passed {where}", endpoint=name, wait=0.0
        )

    def _timestamp(self) -> str:
        """The signing timestamp, formatted once per second."""
        now = self.clock.wall()
        second = int(now.timestamp())
        if second != self._stamp_second:
            self._stamp, self._stamp_second = format_timestamp(now), second
        return self._stamp

    def _signed(self, prepared: _Prepared, timeouts: Timeouts) -> TransportRequest:
        """The attempt as the transport sends it, signed now (a retry is signed again)."""
        endpoint = prepared.endpoint
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
        return TransportRequest(
            endpoint.name,
            endpoint.method,
            prepared.url,
            headers,
            prepared.body_bytes,
            timeouts,
            self._max_response_bytes,
        )

    async def _send(
        self,
        prepared: _Prepared,
        attempt: int,
        timeouts: Timeouts,
        on_send: Callable[[], None] | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        endpoint = prepared.endpoint
        observed = self._observe_every_request()
        await self._admission.acquire(endpoint.name, deadline)
        self.in_flight += 1
        try:
            self._check_open(endpoint.name)  # the client may have closed while we waited
            request = self._signed(prepared, timeouts)
            if on_send is not None:
                on_send()
            if observed:
                self._emit(RequestSent(endpoint.name, endpoint.method, prepared.path, attempt))
            sent_at = self.clock.monotonic()
            response = await self._transport.send(request)
        finally:
            self.in_flight -= 1
            self._admission.release()
        if observed:
            self._emit(
                ResponseReceived(
                    endpoint.name, prepared.path, response.status, attempt, self.clock.monotonic() - sent_at
                )
            )
        return decipher(endpoint, response.status, response.headers, response.body, self.clock.wall())

    def _observe_every_request(self) -> bool:
        """Whether anyone listens to per-request events: a custom hook, or DEBUG logging.

        Retries and give-ups are always emitted; skipping the two per-request events
        when only a silent logger would see them keeps them off the hot path.
        """
        return self._custom_hooks or logger.isEnabledFor(logging.DEBUG)

    def _emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:  # a broken hook must not break the request it observes
                logger.exception("hook %r failed on %s", hook, type(event).__name__)
