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
import datetime as _dt
import logging
import math
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
from ._limits import Admission, Deadlines, RouteLimit, SharedLimits
from ._retry import RetryBudget, RetryPolicy, RetryState
from ._secret import Secret
from ._signing import authorization, canonical_host_request, enc, format_timestamp, signing_key, signing_prefix
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


def _path_segment(name: str, value: str | int) -> str:
    """``value`` checked and percent-encoded for one path segment."""
    text = check_path_param(name, value)
    # Letters and digits need no encoding (a dataId is digits): enc()'s cache would only churn.
    return text if text.isascii() and text.isalnum() else enc(text)


def _encodes(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


_JSON = "application/json; charset=UTF-8"
#: What :func:`decipher` is given as the time of a 2xx response, which it never reads.
_NEVER_READ = _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)


@attrs.define
class _Call:
    """One call's request, built once and kept across its attempts: the exact URL and body
    that are sent, and the canonical request each attempt is signed over afresh."""

    endpoint: Endpoint
    url: str
    body: bytes | None
    canonical: bytes
    path_start: int  # where the path begins in ``url``

    @property
    def path(self) -> str:
        """The exact path sent (percent-encoded, so a ``?`` in it is the query's); read only
        for events and errors, so a write in flight does not keep a copy of it."""
        return self.url[self.path_start :].partition("?")[0]


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
        self._key: tuple[str, tuple[Any, Any]] = ("", (None, None))
        self._key_second = -1
        self._key_until = -math.inf  # the monotonic time until which the key's second lasts
        self.clock: Clock = clock or SystemClock()
        self._max_response_bytes = max_response_bytes
        self.in_flight = 0
        self._retry_state = RetryState(retry_budget if retry_budget is not None else RetryBudget())
        self._admission = Admission(max_concurrency, route_limits, self.clock, self._retry_state, limits)
        self._deadlines = Deadlines(self.clock)

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
            if self._loop is not loop:
                self._deadlines = Deadlines(self.clock)  # an alarm set in the old loop never rings in this one
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
        if self._loop is asyncio.get_running_loop():  # an alarm of another loop is let go with it
            self._deadlines.close()
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
    ) -> _Call:
        """Build the exact path, URL and body bytes that are both signed and sent, and the
        canonical request (which holds no timestamp) that every attempt signs."""
        encoded = {name: _path_segment(name, value) for name, value in path_params.items()}
        path = self._prefix + endpoint.path.format(**encoded)
        raw_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in query) if query else ""
        url = f"{self._origin}{path}?{raw_query}" if raw_query else self._origin + path
        body_text = _encode_body(endpoint.name, body).decode() if body is not None else ""
        # Encoded again: orjson's bytes keep a 4 KiB buffer, which every write in flight held.
        body_bytes = body_text.encode() if body is not None else None
        canonical = canonical_host_request(endpoint.method, path, query, self._host, body_text)
        return _Call(endpoint, url, body_bytes, canonical.encode(), len(self._origin))

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
        batch learns of the 429s and 503s the session retries there. A custom hook also
        sees the call begin and end (:class:`CallStarted`, :class:`CallFinished`).

        The attempt is written out in this one loop, without a context manager or a nested
        coroutine: it is the hot path of every call, and each of those cost measurably.
        """
        self._check_open(endpoint.name)
        call = self.prepare(endpoint, path_params or {}, query, body)
        policy = retry or self.retry
        attempt_timeouts = timeouts or self._default_timeouts
        observed = self._observe_every_request()
        traced = self._custom_hooks
        admission = self._admission
        started = self.clock.monotonic()
        deadline = started + policy.deadline if policy.deadline is not None else None
        task = asyncio.current_task() if deadline is not None else None
        deadlines = self._deadlines
        self._retry_state.first_attempt()
        attempt = sends = 0
        previous: ISalesError | None = None
        if traced:
            route = self._prefix + endpoint.path
            self._emit(CallStarted(endpoint.name, endpoint.method, call.path, route, *self._server, endpoint.write))
        try:
            while True:
                attempt += 1
                sent = False
                guard = deadlines.watch(deadline, task) if deadline is not None else None
                gate = admission.route_gate(endpoint.name)
                waited = attempt > 1  # a retry slept first
                try:
                    try:
                        if gate is not None:
                            await gate.enter(endpoint.name, deadline)
                            waited = True
                        try:
                            if not admission.try_acquire():
                                await admission.acquire(endpoint.name, deadline)
                                waited = True
                            self.in_flight += 1
                            try:
                                if waited:
                                    self._check_open(endpoint.name)  # the client may have closed while we waited
                                request = self._signed(call, attempt_timeouts)
                                sent = True
                                sends += 1
                                if on_send is not None:
                                    on_send()
                                if observed:
                                    self._emit(RequestSent(endpoint.name, endpoint.method, call.path, attempt))
                                    sent_at = self.clock.monotonic()
                                response = await self._transport.send(request)
                            finally:
                                self.in_flight -= 1
                                admission.release()
                        finally:
                            if gate is not None:
                                gate.leave()
                    finally:
                        if guard is not None:
                            guard.disarm()
                    if observed:
                        elapsed = self.clock.monotonic() - sent_at
                        self._emit(ResponseReceived(endpoint.name, call.path, response.status, attempt, elapsed))
                    status = response.status
                    # The wall time dates a failure's Retry-After only: a success does not read the clock.
                    now = _NEVER_READ if 200 <= status < 300 else self.clock.wall()
                    data = decipher(endpoint, status, response.headers, response.body, now)
                    if traced:
                        self._emit(CallFinished(endpoint.name, call.path, sends, SUCCESS, False, None))
                    return data
                except asyncio.CancelledError:
                    if guard is None or not guard.caught():
                        raise
                    exc = self._deadline_passed(call, policy, sent=sent)
                    self._give_up(call, attempt, "deadline", exc)
                    raise exc from previous
                except DeadlineExceededError as exc:
                    self._give_up(call, attempt, "deadline", exc)
                    raise exc from previous
                except ISalesError as exc:
                    previous = exc
                    delay = self._retry_delay(call, policy, exc, attempt=attempt, started=started, on_retry=on_retry)
                await self.clock.sleep(delay)
        except BaseException as exc:
            if traced:
                code = exc.code if isinstance(exc, BusinessError) else None
                unknown = isinstance(exc, OutcomeUnknownError)
                self._emit(CallFinished(endpoint.name, call.path, sends, code, unknown, type(exc).__name__))
            raise

    def _retry_delay(
        self,
        call: _Call,
        policy: RetryPolicy,
        exc: ISalesError,
        *,
        attempt: int,
        started: float,
        on_retry: Callable[[RetryScheduled], None] | None,
    ) -> float:
        """How long to wait before retrying the attempt that failed with ``exc``; when it
        is not retried, ``exc`` is raised (or :class:`OutcomeUnknownError` for a write that
        may have been applied)."""
        endpoint = call.endpoint
        now = self.clock.monotonic()
        decision = self._retry_state.after_failure(
            policy, exc, attempt=attempt, write=endpoint.write, now=now, elapsed=now - started
        )
        if decision.cool_down and isinstance(exc, HTTPStatusError):
            self._emit(CoolDownStarted(endpoint.name, call.path, exc.status, decision.cool_down))
        if decision.retry:
            scheduled = RetryScheduled(endpoint.name, call.path, attempt, decision.delay, decision.reason, _text(exc))
            self._emit(scheduled)
            if on_retry is not None:
                on_retry(scheduled)
            return decision.delay
        self._give_up(call, attempt, decision.reason, exc)
        if decision.unknown:
            raise OutcomeUnknownError(
                f"{endpoint.name} {call.path}: the write was sent but its outcome is "
                f"unknown ({_text(exc)}); it was not resent",
                endpoint=endpoint.name,
            ) from exc
        raise exc

    def _give_up(self, call: _Call, attempt: int, reason: str, exc: ISalesError) -> None:
        self._emit(GaveUp(call.endpoint.name, call.path, attempt, reason, _text(exc)))

    def _deadline_passed(self, call: _Call, policy: RetryPolicy, *, sent: bool) -> ISalesError:
        """The error of an attempt ended by the call's deadline: a write that had left is of
        unknown outcome (and never resent); anything else simply ran out of time."""
        name = call.endpoint.name
        if sent and call.endpoint.write:
            return OutcomeUnknownError(
                f"{name} {call.path}: the write was sent, and the call's {policy.deadline:g}s deadline "
                "passed before its answer; its outcome is unknown and it was not resent",
                endpoint=name,
            )
        where = "while its request was in flight" if sent else "before its request could be sent"
        return DeadlineExceededError(
            f"{name}: the call's {policy.deadline:g}s deadline passed {where}", endpoint=name, wait=0.0
        )

    def _signing_key(self) -> tuple[str, tuple[Any, Any]]:
        """The ``Authorization`` prefix of this second and its derived key, made once per second.

        The wall clock is read only once the monotonic clock says the second the key was
        made in may have ended: a wall clock stepped meanwhile is seen within a second.
        """
        if self.clock.monotonic() < self._key_until:
            return self._key
        now = self.clock.wall()
        stamp = now.timestamp()
        second = int(stamp)
        if second != self._key_second:
            prefix = signing_prefix(self._ak, format_timestamp(now))
            self._key, self._key_second = (prefix, signing_key(self._sk, prefix)), second
        self._key_until = self.clock.monotonic() + (second + 1 - stamp)
        return self._key

    def _signed(self, call: _Call, timeouts: Timeouts) -> TransportRequest:
        """The attempt as the transport sends it, signed now (a retry is signed again)."""
        prefix, key = self._signing_key()
        endpoint = call.endpoint
        headers = {
            "Host": self._host,
            "Authorization": authorization(prefix, key, call.canonical),
            "Content-Type": _JSON,
        }
        return TransportRequest(
            endpoint.name, endpoint.method, call.url, headers, call.body, timeouts, self._max_response_bytes
        )

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


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
