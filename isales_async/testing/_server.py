"""The embedded fake CC-iSales server: strict, deterministic and scriptable.

It verifies every C2 ``auth-v2`` signature with its own verifier (:mod:`._auth`, 401
otherwise), serves the five seed endpoints and their neighbours with the documented
validation and per-endpoint error codes, refuses what the real server cannot convert
(``02000008``: a missing or wrong Content-Type, a body on a GET, unknown body or query
keys, a value of the wrong JSON type), answers "does not exist" for a call or campaign
of another VDN, can be scripted with faults, and records every request and every write
it applied, so a test can prove that nothing was lost or applied twice.

This module is the application: dispatch, signature verification, faults before and
after processing, the lifecycle and the recording of evidence. The tenant's state and
its endpoints are :mod:`._tenant`; pushing call results to a receiver is :mod:`._pusher`.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import attrs
import orjson
from aiohttp import web

from .._clock import Clock, SystemClock
from .._errors import ValidationError
from . import _auth, _pusher
from ._faults import Capacity, Chaos, Fault, FaultKind, PagingQuirk, compressed_body
from ._memory import MemoryTransport
from ._reply import Ending, Reply
from ._routes import (
    ROUTES,
    Reject,
    check_content_type,
    check_query_keys,
    match_path,
    parse_integer,
    parse_query,
    request_body,
)
from ._tenant import Tenant

__all__ = ["DEFAULT_AK", "DEFAULT_SK", "FakeISales", "RecordedRequest"]

API_PREFIX = "/rest/isales/v1/openapi/campaigns/"
#: Unsigned, test-only: the evidence of a server running in another process.
STATE_PATH = "/_fake/state"
DEFAULT_AK = "fake-ak"
DEFAULT_SK = "fake-sk-do-not-use"


@attrs.frozen
class RecordedRequest:
    """A request as the server saw it (after signature verification)."""

    endpoint: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    host: str
    authorization: str
    body: str
    #: When it arrived (``time.monotonic()``, one clock for every process of the host).
    received_at: float = 0.0


def _text_reply(status: int, text: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {**(headers or {}), "Content-Type": "text/plain; charset=utf-8"}, (text.encode(),))


def _json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, {"Content-Type": "application/json; charset=utf-8"}, (orjson.dumps(data),))


def _after(fault: Fault | None, answer: bytes) -> Reply:
    """The reply to a processed request, as a fault that acts after processing distorts it."""
    kind = fault.kind if fault is not None else None
    if kind is FaultKind.RESET_AFTER:
        return Reply(ending=Ending.DROP)
    if kind is FaultKind.TRUNCATE:
        return Reply(200, {"Content-Type": "application/json"}, (answer,), ending=Ending.TRUNCATE)
    if fault is not None and kind is FaultKind.BODY:
        return Reply(200, {"Content-Type": fault.content_type.split(";")[0]}, (fault.body,))
    if fault is not None and kind is FaultKind.COMPRESSED:
        pieces = compressed_body(answer, fault.padding, fault.encoding)
        return Reply(200, {"Content-Type": "application/json"}, pieces, encoding=fault.encoding, chunked=fault.chunked)
    return Reply(200, {"Content-Type": "application/json; charset=utf-8"}, (answer,))


async def _render(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Write ``reply`` to the request's connection, ending it as the reply says."""
    if reply.ending is Ending.DROP:
        return _drop(request)
    if reply.ending is Ending.TRUNCATE:
        body = reply.body
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        _drop(request)
        return response
    if reply.encoding is not None:
        return await _stream(request, reply)
    return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


async def _stream(request: web.Request, reply: Reply) -> web.StreamResponse:
    """A compressed body, written 64 pieces at a time (a GiB bomb is never joined in memory)."""
    pieces = reply.pieces
    response = web.StreamResponse(
        status=reply.status, headers={**reply.headers, "Content-Encoding": reply.encoding or ""}
    )
    if reply.chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = sum(len(piece) for piece in pieces)
    await response.prepare(request)
    try:
        for start in range(0, len(pieces), 64):
            await response.write(b"".join(pieces[start : start + 64]))
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading (a bounded client does, on a bomb)
    return response


def _drop(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=200)


class FakeISales(Tenant):
    """A strict, scriptable stand-in for a CC-iSales tenant, on loopback.

    Use it as an async context manager (or :meth:`start` / :meth:`close`); ``base_url``
    is then where it listens. ``credentials`` maps each accepted AK to its SK.

    Scripting: :meth:`inject` queues faults; ``chaos`` adds random ones; ``latency``
    delays every answer (sleeping on ``clock``: a :class:`FakeClock` shared with the
    client makes it cost no real time); ``capacity`` (a :class:`Capacity`) refuses what
    arrives above a number of requests of an endpoint in flight; ``paging`` makes every paged endpoint page the way a
    misbehaving server does (a :class:`PagingQuirk`; ``SHORT_PAGE_ONCE`` shortens the
    first answer to page 2 of each endpoint once in the server's life); ``on_request``
    callbacks see each verified request first (a test can change the data between pages
    there). Evidence: ``requests`` (every verified request), ``applied`` (every write
    applied, in order) and :meth:`applied_counts`; ``route_in_flight`` and ``route_peak``
    count the requests of each endpoint being processed now, and at most at once.

    The tenant's business-result definitions are ``business_results``: generated from
    ``business_result_count`` and ``children_per_result`` (``B01`` with ``B01-1`` ...), or
    given as the API's dicts (``{"code", "name", "defLevel", "children": [...]}``) with
    ``FakeISales(business_results=[...])``; assign the attribute to change them mid-test.
    A writeback is checked against them as it arrives (see ``_on_callBusiResult``).
    """

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        obs_code_count: int = 120,
        business_result_count: int = 12,
        children_per_result: int = 3,
        data_id_count: int = 1_000_000,
        calls_per_campaign: int = 250,
        campaigns: Sequence[str] = ("1001", "1002"),
        latency: float = 0.0,
        max_clock_skew: float = 900.0,
        chaos: Chaos | None = None,
        paging: PagingQuirk | None = None,
        business_results: Sequence[Mapping[str, Any]] | None = None,
        capacity: Capacity | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            obs_code_count=obs_code_count,
            business_result_count=business_result_count,
            children_per_result=children_per_result,
            data_id_count=data_id_count,
            calls_per_campaign=calls_per_campaign,
            campaigns=campaigns,
            paging=paging,
            business_results=business_results,
        )
        self.credentials: dict[str, str] = dict(credentials or {DEFAULT_AK: DEFAULT_SK})
        self.latency = latency
        self.max_clock_skew = max_clock_skew
        self.faults: collections.deque[Fault] = collections.deque()
        self.chaos = chaos
        self.capacity = capacity
        self.clock: Clock = clock or SystemClock()
        self.route_in_flight: collections.Counter[str] = collections.Counter()
        self.route_peak: collections.Counter[str] = collections.Counter()
        self.on_request: list[Callable[[RecordedRequest], None]] = []
        self.requests: list[RecordedRequest] = []
        self.rejected_auth: int = 0
        self.in_flight: int = 0
        self.max_in_flight: int = 0
        self._release = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._listen: tuple[str, int, ssl.SSLContext | None] = ("", 0, None)
        self.base_url: str = ""

    # -- lifecycle ---------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (to mount or run elsewhere)."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get(STATE_PATH, self._state)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None) -> str:
        """Listen on ``host:port`` (0 picks a free port; https with ``ssl_context``) and return the base URL."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await self._site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._listen = (bound_host, bound_port, ssl_context)
        self.base_url = f"{'https' if ssl_context else 'http'}://{bound_host}:{bound_port}"
        return self.base_url

    async def go_down(self) -> None:
        """Stop listening and drop open connections (as a crash would), keeping all state."""
        if self._site is not None:
            await self._site.stop()
        if self._runner is not None and self._runner.server is not None:
            for connection in list(self._runner.server.connections):
                connection.force_close()

    async def come_back(self) -> None:
        """Listen again on the same address after :meth:`go_down`."""
        assert self._runner is not None
        host, port, ssl_context = self._listen
        self._site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await self._site.start()

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeISales:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- scripting and evidence ----------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to the next matching requests, in order."""
        self.faults.extend(faults)

    def release(self) -> None:
        """Let every request held by a ``HANG`` fault go on; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and asyncio._get_running_loop() is not loop:
            loop.call_soon_threadsafe(self._release.set)  # from another thread: asyncio.Event is not thread-safe
        else:
            self._release.set()

    def applied_counts(self, endpoint: str = "callBusiResult") -> collections.Counter[str]:
        """How many times each key (dataId, defId) was applied."""
        return collections.Counter(w.key for w in self.applied if w.endpoint == endpoint)

    def push_records(self, campaign_id: str = "1001", count: int = 10, start: int = 0) -> list[dict[str, Any]]:
        """Call results of a campaign in the pushed format."""
        return _pusher.pushed_format(self.campaign_calls[campaign_id][start : start + count])

    def malformed_push_records(self, campaign_id: str = "1001", start: int = 0) -> list[Any]:
        """Pushed records no receiver can read, one of each kind, to mix with :meth:`push_records`.

        In order: a record whose ``callStatus`` is not a number, one whose ``vdnId`` is
        not a number, one without ``callId``, one whose ``callId`` is a number (built on
        the calls from ``start`` on), then a string, a number and ``null`` in place of a
        record.
        """
        return _pusher.malformed(self.push_records(campaign_id, count=4, start=start))

    async def push_results(
        self,
        url: str,
        records: Sequence[Any] | None = None,
        *,
        body: bytes | None = None,
        clock: Clock | None = None,
    ) -> list[int]:
        """POST ``records`` to a callback URL the way CC-iSales does, re-pushing until answered 200.

        Pushes again at once after a failure, then every 10 minutes, at most 6 pushes
        (``clock`` lets a test skip the waits). ``records`` may hold anything JSON can
        carry (see :meth:`malformed_push_records`); ``body`` sends these exact bytes
        instead, for bodies that are not a JSON list at all. Returns the status of each
        push (0 when the connection failed).
        """
        if records is not None and body is not None:
            raise ValidationError("body", "give records or body, not both")
        if body is None:
            body = orjson.dumps(list(records) if records is not None else self.push_records())
        return await _pusher.push(url, body, clock or SystemClock())

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def peak_in_flight(self, endpoint: str) -> int:
        """The most requests to ``endpoint`` (e.g. ``"callresult"``) ever in process at once,
        from every client together: what a tenant-wide flow limit is held to."""
        return self.route_peak[endpoint]

    def state(self) -> dict[str, Any]:
        """The evidence as JSON-ready data: what was applied, how many requests and connections."""
        connections = (
            len(self._runner.server.connections) if self._runner is not None and self._runner.server is not None else 0
        )
        return {
            "applied": {
                endpoint: dict(self.applied_counts(endpoint))
                for endpoint in ("callBusiResult", "createObResult", "updateObResult")
            },
            "requests": len(self.requests),
            "rejected_auth": self.rejected_auth,
            "open_connections": connections,
            "peak_in_flight": dict(self.route_peak),
            "received_at": {
                endpoint: [r.received_at for r in self.requests if r.endpoint == endpoint]
                for endpoint in sorted({r.endpoint for r in self.requests})
            },
        }

    async def _state(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.state()), content_type="application/json")

    # -- request handling ------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_body = await request.read()
        reply = await self.dispatch(request.method, request.raw_path, request.headers, raw_body)
        return await _render(request, reply)

    async def dispatch(self, method: str, target: str, headers: Mapping[str, str], raw_body: bytes) -> Reply:
        """Handle one request, without a socket: ``target`` is the raw path and query,
        ``headers`` a case-insensitive mapping. The aiohttp routes and the memory
        transport both come here, so the signature check, the faults, the tenant's state
        and the evidence are one and the same."""
        self._loop = self._loop or asyncio.get_running_loop()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._serve(method, target, headers, raw_body.decode("utf-8", "replace"))
        finally:
            self.in_flight -= 1

    async def _serve(self, method: str, target: str, headers: Mapping[str, str], body: str) -> Reply:
        raw_path, _, raw_query = target.partition("?")
        query = parse_query(raw_query)
        host = headers.get("Host", "")
        authorization = headers.get("Authorization", "")
        problem = self._verify(method, raw_path, query, headers, body)
        if problem:
            self.rejected_auth += 1
            return _json_reply({"error": "Unauthorized", "detail": problem}, status=401)
        routed = self._route(method, raw_path)
        if isinstance(routed, Reply):
            return routed
        endpoint, vdn_text, params = routed
        recorded = RecordedRequest(endpoint, method, raw_path, query, host, authorization, body, time.monotonic())
        self.requests.append(recorded)
        for callback in self.on_request:
            callback(recorded)
        capacity = self.capacity
        if capacity is not None and capacity.covers(endpoint) and capacity.refuses(self.route_in_flight[endpoint]):
            headers = {"Retry-After": capacity.retry_after} if capacity.retry_after is not None else {}
            return _text_reply(capacity.status, f"over capacity ({capacity.limit} at once)", headers)
        self.route_in_flight[endpoint] += 1
        self.route_peak[endpoint] = max(self.route_peak[endpoint], self.route_in_flight[endpoint])
        try:
            return await self._process(endpoint, vdn_text, params, query, body, headers.get("Content-Type"))
        finally:
            self.route_in_flight[endpoint] -= 1

    async def _process(
        self,
        endpoint: str,
        vdn_text: str,
        params: dict[str, str],
        query: Sequence[tuple[str, str]],
        body: str,
        content_type: str | None,
    ) -> Reply:
        """A verified, routed request admitted by the capacity: its faults, its answer, its latency."""
        fault = self._next_fault(endpoint)
        if fault is not None:
            early = await self._before(fault)
            if early is not None:
                return early
        answer = self._answer(endpoint, vdn_text, params, query, body, content_type)
        if self.latency:
            await self.clock.sleep(self.latency)
        return _after(fault, orjson.dumps(answer))

    def _verify(
        self, method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str], body: str
    ) -> str:
        """Why the request's signature is refused ("" when valid), by the server's own verifier."""
        return _auth.check(
            headers.get("Authorization", ""),
            method=method,
            path=path,
            query=query,
            headers={name.lower(): value for name, value in headers.items()},
            body=body,
            secret_of=self.credentials.get,
            now=_dt.datetime.now(_dt.timezone.utc),
            max_skew=self.max_clock_skew,
        )

    def _route(self, method: str, raw_path: str) -> tuple[str, str, dict[str, str]] | Reply:
        if not raw_path.startswith(API_PREFIX):
            return _text_reply(404, "not found")
        vdn_text, _, rest = raw_path[len(API_PREFIX) :].partition("/")
        segments = [unquote(s) for s in rest.split("/")]
        for name, route_method, pattern in ROUTES:
            params = match_path(segments, pattern)
            if params is not None:
                if method != route_method:
                    return _text_reply(405, "method not allowed")
                return name, vdn_text, params
        return _text_reply(404, "not found")

    def _next_fault(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if fault.endpoint in (None, endpoint):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return self.chaos.pick(endpoint) if self.chaos is not None else None

    async def _before(self, fault: Fault) -> Reply | None:
        """The reply of a fault that answers before the request is processed, or ``None``
        once a fault that only delays has waited."""
        if fault.kind is FaultKind.STATUS:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _text_reply(fault.status, f"fault {fault.status}", headers)
        if fault.kind is FaultKind.RESET_BEFORE:
            return Reply(ending=Ending.DROP)
        if fault.kind is FaultKind.DELAY:
            await self.clock.sleep(fault.delay)
        if fault.kind is FaultKind.HANG:
            await self._release.wait()
        return None

    def transport(self) -> MemoryTransport:
        """A transport that sends a client's requests to this fake in process, without sockets.

        ``ISalesClient("https://isales.test", ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1,
        transport=FakeISales().transport())``: no port, no server to start. Every request
        meets the same signature check, faults and state as over loopback; the faults
        that break a connection raise the errors the client raises for them over a socket.
        """
        return MemoryTransport(self)

    def _answer(
        self,
        endpoint: str,
        vdn_text: str,
        params: dict[str, str],
        query: Sequence[tuple[str, str]],
        body: str,
        content_type: str | None,
    ) -> dict[str, Any]:
        try:
            check_content_type(content_type)
            check_query_keys(endpoint, query)
            parsed = request_body(endpoint, body)
            vdn = parse_integer("vdnId", vdn_text)
            if not 1 <= vdn <= 9999:
                raise Reject("0200001", f"vdnId must be 1-9999, got {vdn_text!r}")
            return self.respond(endpoint, params=params, query=dict(query), body=parsed, vdn=vdn)
        except Reject as reject:
            return {
                "resultCode": reject.code,
                "resultDesc": reject.description,
                "returnCode": reject.code,
                "returnDesc": reject.description,
            }
