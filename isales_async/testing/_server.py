"""The embedded fake CC-iSales server: strict, deterministic and scriptable.

It verifies every C2 ``auth-v2`` signature with its own verifier (:mod:`._auth`, 401
otherwise), serves the five seed endpoints and their neighbours with the documented
validation and per-endpoint error codes, refuses what the real server cannot convert
(``02000008``: a missing or wrong Content-Type, a body on a GET, unknown body or query
keys, a value of the wrong JSON type), answers "does not exist" for a call or campaign
of another VDN, can be scripted with faults, and records every request and every write
it applied, so a test can prove that nothing was lost or applied twice.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import aiohttp
import attrs
import orjson
from aiohttp import web

from .._clock import Clock, SystemClock
from .._envelope import SUCCESS
from .._errors import ValidationError
from . import _auth, _data
from ._faults import SHORT_PAGE_NUM, Chaos, Fault, FaultKind, PagingQuirk, compressed_body
from ._memory import MemoryTransport
from ._reply import Ending, Reply
from ._routes import (
    ROUTES,
    Reject,
    check_content_type,
    check_query_keys,
    envelope_of,
    is_sub_result,
    match_path,
    page_args,
    parse_integer,
    parse_query,
    request_body,
    text_field,
)

__all__ = ["DEFAULT_AK", "DEFAULT_SK", "AppliedWrite", "FakeISales", "RecordedRequest"]

API_PREFIX = "/rest/isales/v1/openapi/campaigns/"
#: The fields of a pushed call result, and the documented re-push behaviour.
PUSH_FIELDS = (
    "campaignId",
    "sessionId",
    "called",
    "callTimeStr",
    "callStatus",
    "failCode",
    "vdnId",
    "callId",
    "customField",
    "recordPath",
)
REPUSH_INTERVAL = 600.0
MAX_PUSHES = 6
#: Unsigned, test-only: the evidence of a server running in another process.
STATE_PATH = "/_fake/state"
DEFAULT_AK = "fake-ak"
DEFAULT_SK = "fake-sk-do-not-use"
#: The VDN the seed campaigns and their calls belong to.
VDN_ID = 1


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


@attrs.frozen
class AppliedWrite:
    """A write the server applied: the endpoint, its key and the body it applied."""

    endpoint: str
    key: str
    body: dict[str, Any]


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


class FakeISales:
    """A strict, scriptable stand-in for a CC-iSales tenant, on loopback.

    Use it as an async context manager (or :meth:`start` / :meth:`close`); ``base_url``
    is then where it listens. ``credentials`` maps each accepted AK to its SK.

    Scripting: :meth:`inject` queues faults; ``chaos`` adds random ones; ``latency``
    delays every answer; ``paging`` makes every paged endpoint page the way a
    misbehaving server does (a :class:`PagingQuirk`; ``SHORT_PAGE_ONCE`` shortens the
    first answer to page 2 of each endpoint once in the server's life); ``on_request``
    callbacks see each verified request first (a test can change the data between pages
    there). Evidence: ``requests`` (every verified request), ``applied`` (every write
    applied, in order) and :meth:`applied_counts`.

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
    ) -> None:
        self.credentials: dict[str, str] = dict(credentials or {DEFAULT_AK: DEFAULT_SK})
        self.obs_codes: list[dict[str, Any]] = _data.obs_codes(obs_code_count)
        self.business_results: list[dict[str, Any]] = (
            [dict(result) for result in business_results]
            if business_results is not None
            else _data.business_results(business_result_count, children_per_result)
        )
        self.data_id_count = data_id_count
        start = _dt.datetime(2026, 11, 2, 9, 0, 0)
        self.campaign_calls: dict[str, list[dict[str, Any]]] = {
            c: _data.call_results(VDN_ID, c, calls_per_campaign, start) for c in campaigns
        }
        #: The VDN each campaign belongs to: callresult and callresultdetail answer "does
        #: not exist" for a campaign or call of another VDN.
        self.campaign_vdns: dict[str, int] = dict.fromkeys(campaigns, VDN_ID)
        self.external_results: dict[str, dict[str, Any]] = {}
        self.latency = latency
        self.max_clock_skew = max_clock_skew
        self.faults: collections.deque[Fault] = collections.deque()
        self.chaos = chaos
        self.paging = paging
        self._shortened: set[str] = set()  # endpoints whose page 2 SHORT_PAGE_ONCE already shortened
        self.on_request: list[Callable[[RecordedRequest], None]] = []
        self.requests: list[RecordedRequest] = []
        self.applied: list[AppliedWrite] = []
        self.rejected_auth: int = 0
        self.in_flight: int = 0
        self.max_in_flight: int = 0
        self._release = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_def_id = 1645244637
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
        calls = self.campaign_calls[campaign_id][start : start + count]
        return [{key: call[key] for key in PUSH_FIELDS} for call in calls]

    def malformed_push_records(self, campaign_id: str = "1001", start: int = 0) -> list[Any]:
        """Pushed records no receiver can read, one of each kind, to mix with :meth:`push_records`.

        In order: a record whose ``callStatus`` is not a number, one whose ``vdnId`` is
        not a number, one without ``callId``, one whose ``callId`` is a number (built on
        the calls from ``start`` on), then a string, a number and ``null`` in place of a
        record.
        """
        wrong_status, wrong_vdn, no_call_id, numeric_call_id = self.push_records(campaign_id, count=4, start=start)
        del no_call_id["callId"]
        return [
            {**wrong_status, "callStatus": "succeeded"},
            {**wrong_vdn, "vdnId": "eight"},
            no_call_id,
            {**numeric_call_id, "callId": 1644464743},
            "not a call result",
            1388,
            None,
        ]

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
        clock = clock or SystemClock()
        if body is None:
            body = orjson.dumps(list(records) if records is not None else self.push_records())
        statuses: list[int] = []
        async with aiohttp.ClientSession() as session:
            for attempt in range(MAX_PUSHES):
                if attempt >= 2:
                    await clock.sleep(REPUSH_INTERVAL)
                try:
                    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                        statuses.append(response.status)
                except aiohttp.ClientError:
                    statuses.append(0)
                if statuses[-1] == 200:
                    break
        return statuses

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def calls(self) -> Iterator[dict[str, Any]]:
        for calls in self.campaign_calls.values():
            yield from calls

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
        recorded = RecordedRequest(endpoint, method, raw_path, query, host, authorization, body)
        self.requests.append(recorded)
        for callback in self.on_request:
            callback(recorded)
        fault = self._next_fault(endpoint)
        if fault is not None:
            early = await self._before(fault)
            if early is not None:
                return early
        answer = self._answer(endpoint, vdn_text, params, query, body, headers.get("Content-Type"))
        if self.latency:
            await asyncio.sleep(self.latency)
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
            await asyncio.sleep(fault.delay)
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
            handler = getattr(self, f"_on_{endpoint}")
            return handler(params=params, query=dict(query), body=parsed, vdn=vdn)  # type: ignore[no-any-return]
        except Reject as reject:
            return {
                "resultCode": reject.code,
                "resultDesc": reject.description,
                "returnCode": reject.code,
                "returnDesc": reject.description,
            }

    # -- endpoints ---------------------------------------------------------------------

    def _paged(self, endpoint: str, query: dict[str, str], items: Sequence[Any], field: str) -> dict[str, Any]:
        num, size = page_args(endpoint, query)
        return envelope_of(f"query {endpoint} Success!", **self._page_fields(endpoint, items, num, size, field))

    def _page_fields(self, endpoint: str, items: Sequence[Any], num: int, size: int, field: str) -> dict[str, Any]:
        """The list field and ``totalCount`` of page ``num``, as the ``paging`` quirk distorts them."""
        quirk = self.paging
        if quirk is PagingQuirk.IGNORE_PAGE_NUM:
            num = 1
        chunk = list(items[(num - 1) * size : num * size])
        if num == SHORT_PAGE_NUM and len(chunk) == size > 1 and self._shortens(quirk, endpoint):
            chunk.pop()
        fields: dict[str, Any] = {field: chunk, "totalCount": len(items)}
        if quirk is PagingQuirk.PER_PAGE_TOTAL:
            fields["totalCount"] = len(chunk)
        elif quirk is PagingQuirk.TOTAL_NULL:
            fields["totalCount"] = None
        elif quirk is PagingQuirk.TOTAL_UNKNOWN:
            fields["totalCount"] = -1
        elif quirk is PagingQuirk.TOTAL_MISSING:
            del fields["totalCount"]
        return fields

    def _shortens(self, quirk: PagingQuirk | None, endpoint: str) -> bool:
        if quirk is PagingQuirk.SHORT_PAGE_ALWAYS:
            return True
        if quirk is PagingQuirk.SHORT_PAGE_ONCE and endpoint not in self._shortened:
            self._shortened.add(endpoint)
            return True
        return False

    def _on_queryOBSResultCode(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        return self._paged("queryOBSResultCode", query, self.obs_codes, "obsCodes")

    def _on_queryBusinessResults(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        return self._paged("queryBusinessResults", query, self.business_results, "data")

    def _on_queryOBSResults(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        listed = [{k: r[k] for k in ("displayResult", "resultCode", "defId")} for r in self.external_results.values()]
        return self._paged("queryOBSResults", query, listed, "data")

    def _on_callBusiResult(self, *, params: dict[str, str], body: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Apply a writeback, refusing what the tenant's definitions do not have.

        A ``busiResult`` that is not a level-1 code of ``business_results`` is ``0200001``
        (the page's error table offers nothing closer than "Parameter error"); a
        ``subStatus`` that is not one of that code's children, including any ``subStatus``
        on a code without children, is ``0200034``. The definitions read as
        :class:`~isales_async.Definitions` reads them (:meth:`_sub_statuses_of`).
        """
        data_id = params["dataId"]
        busi_result = text_field(body, "busiResult", required=True, max_len=50)
        sub_status = text_field(body, "subStatus", max_len=50)
        text_field(body, "busiResultDesc")
        text_field(body, "workNo")
        if not 1 <= parse_integer("dataId", data_id) <= self.data_id_count:
            raise Reject("0200033", f"The outbound call data {data_id} does not exist.")
        children = self._sub_statuses_of(busi_result) if busi_result is not None else None
        if children is None:
            raise Reject("0200001", f"busiResult {busi_result} is not a defined business result")
        if sub_status is not None and sub_status not in children:
            raise Reject("0200034", f"The substatus {sub_status} does not match the business result {busi_result}.")
        self.applied.append(AppliedWrite("callBusiResult", data_id, body))
        return {"resultCode": SUCCESS, "resultDesc": "The business result is written back successfully."}

    def _sub_statuses_of(self, busi_result: str) -> set[str] | None:
        """The sub-status codes of the level-1 code ``busi_result``; ``None`` when it is not one.

        The API reference (queryBusinessResults, Tables 4 and 5) marks each item with
        ``defLevel``: 1 a parent business result, 2 a sub-result. So an item marked 2 is
        no level-1 code even where it is listed at the top, and ``busiResult`` takes only
        level-1 codes. Nothing makes a code unique in the listing: a code listed twice is
        one business result whose sub-results are those of every listing.
        """
        listings = [r for r in self.business_results if r["code"] == busi_result and not is_sub_result(r)]
        if not listings:
            return None
        return {child["code"] for listing in listings for child in listing.get("children") or ()}

    def _on_callresultdetail(self, *, params: dict[str, str], vdn: int, **_: Any) -> dict[str, Any]:
        call = next((c for c in self.calls() if c["callId"] == params["callId"]), None)
        if call is None or call["vdnId"] != vdn:
            raise Reject("0200007", "The call record ID does not exist.")
        detail = {
            k: call[k]
            for k in (
                "callId",
                "called",
                "callEndTime",
                "vdnId",
                "callStatus",
                "failCode",
                "resultCode",
                "callBeginTime",
                "recordPath",
                "ackBeginTime",
            )
        }
        return envelope_of("Query Success!", data=detail)

    def _on_callresult(self, *, params: dict[str, str], body: dict[str, Any], vdn: int, **_: Any) -> dict[str, Any]:
        calls = self.campaign_calls.get(params["campaignId"])
        if calls is None or self.campaign_vdns.get(params["campaignId"], VDN_ID) != vdn:
            raise Reject("0200007", "The campaign does not exist.")
        show_detail = body.get("showDetail") or 0
        if show_detail not in (0, 1):
            raise Reject("0200001", "showDetail must be 0 or 1")
        begin, end = body.get("beginTime"), body.get("endTime")
        if (begin is None) != (end is None):
            raise Reject("0200008", "beginTime and endTime must be specified together.")
        if begin is not None and end is not None:
            try:
                begin_day = _dt.datetime.strptime(begin, "%Y-%m-%d")
                end_day = _dt.datetime.strptime(end, "%Y-%m-%d")
            except ValueError:
                raise Reject("0200009", "The time format is incorrect.") from None
            if begin_day >= end_day:
                raise Reject("0200010", "The start time must be earlier than the end time.")
            if (end_day - begin_day).days > 30:
                raise Reject("0200011", "The time span cannot exceed 30 days.")
            calls = [
                c
                for c in calls
                if begin_day
                <= _dt.datetime.strptime(c["callTimeStr"], "%Y-%m-%d %H:%M:%S")
                < end_day + _dt.timedelta(days=1)
            ]
        for key in ("sessionId", "customField"):
            if body.get(key) is not None:
                calls = [c for c in calls if c[key] == body[key]]
        max_size = 100 if show_detail else 500
        size, num = body.get("pageSize"), body.get("pageNum")
        if size is None and num is None:
            fields: dict[str, Any] = {"data": calls[:2000], "totalCount": len(calls)}
        else:
            if size is None or not 1 <= size <= max_size:
                raise Reject("0200001", f"pageSize must be 1-{max_size} with showDetail={show_detail}")
            if num is None or num < 1:
                raise Reject("0200001", "pageNum must be greater than 0")
            fields = self._page_fields("callresult", calls, num, size, "data")
        keys: tuple[str, ...] = (
            "campaignId",
            "sessionId",
            "called",
            "callTimeStr",
            "callStatus",
            "failCode",
            "resultCode",
            "vdnId",
            "callId",
            "recordPath",
        )
        if show_detail:
            keys += ("customField", "ackBeginTime", "callBeginTime", "callEndTime")
        fields["data"] = [{k: c[k] for k in keys} for c in fields["data"]]
        return envelope_of("Query Success!", **fields)

    def _validated_external(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        display = text_field(body, "displayResult", required=True)
        codes = body.get("obsCodes")
        if not codes:
            raise Reject("02000001", "obsCodes is empty")
        known = {c["obsCode"] for c in self.obs_codes}
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise Reject("0200001", f"unknown obsCodes: {unknown}")
        return display or "", codes

    def _on_createObResult(self, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        result_code = text_field(body, "resultCode", max_len=7)
        display, codes = self._validated_external(body)
        def_id = str(self._next_def_id)
        self._next_def_id += 1
        self.external_results[def_id] = {
            "defId": def_id,
            "displayResult": display,
            "resultCode": result_code or "",
            "obsCodes": codes,
        }
        self.applied.append(AppliedWrite("createObResult", def_id, body))
        return envelope_of("createObResult Success!", defId=def_id)

    def _on_queryObsResultDetail(self, *, params: dict[str, str], **_: Any) -> dict[str, Any]:
        found = self.external_results.get(params["defId"])
        if found is None:
            raise Reject("0200001", f"defId {params['defId']} does not exist")
        return envelope_of("queryObsResultDetail Success!", obResult=dict(found))

    def _on_updateObResult(self, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        def_id = text_field(body, "defId", required=True) or ""
        if def_id not in self.external_results:
            raise Reject("0200001", f"defId {def_id!r} does not exist")
        display, codes = self._validated_external(body)
        self.external_results[def_id].update(displayResult=display, obsCodes=codes)
        self.applied.append(AppliedWrite("updateObResult", def_id, body))
        return envelope_of("updateObResult Success!")
