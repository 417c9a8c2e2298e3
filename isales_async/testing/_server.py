"""The embedded fake CC-iSales server: strict, deterministic and scriptable.

It verifies every C2 ``auth-v2`` signature (401 otherwise), serves the five seed
endpoints and their neighbours with the documented validation and per-endpoint error
codes, can be scripted with faults, and records every request and every write it
applied, so a test can prove that nothing was lost or applied twice.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import enum
import hmac
import random
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote

import aiohttp
import attrs
import orjson
from aiohttp import web

from .._clock import Clock, SystemClock
from .._envelope import SUCCESS
from .._signing import canonical_request, sign
from . import _data

__all__ = ["AppliedWrite", "Chaos", "FakeISales", "Fault", "FaultKind", "RecordedRequest"]

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


class FaultKind(enum.Enum):
    """How a scripted fault disturbs one request."""

    STATUS = "status"  # answer ``status`` (with ``retry_after``), without processing
    RESET_BEFORE = "reset_before"  # drop the connection without processing
    RESET_AFTER = "reset_after"  # process the request, then drop the connection
    TRUNCATE = "truncate"  # process it, send half the body, then drop the connection
    BODY = "body"  # process it, then answer 200 with ``body`` instead of the envelope
    DELAY = "delay"  # wait ``delay`` seconds, then process normally
    HANG = "hang"  # wait until the server is closed or released, then process


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


class _Reject(Exception):
    """A business error answer: HTTP 200 with a failing result code."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


# (method, path pattern split in segments); "{x}" segments capture.
_ROUTES: Sequence[tuple[str, str, tuple[str, ...]]] = (
    ("queryOBSResultCode", "GET", ("queryOBSResultCode",)),
    ("queryBusinessResults", "GET", ("queryBusinessResults",)),
    ("callBusiResult", "POST", ("callBusiResult", "{dataId}")),
    ("callresultdetail", "GET", ("callresultdetail", "{callId}")),
    ("callresult", "POST", ("callresult", "{campaignId}")),
    ("createObResult", "POST", ("createObResult",)),
    ("queryOBSResults", "GET", ("queryOBSResults",)),
    ("queryObsResultDetail", "GET", ("{defId}", "queryObsResultDetail")),
    ("updateObResult", "POST", ("updateObResult",)),
)

# Per endpoint: the code for a bad pageSize and for a bad pageNum.
_PAGING_CODES = {
    "queryOBSResultCode": ("0200001", "0200001"),
    "queryBusinessResults": ("0200005", "0200007"),
    "queryOBSResults": ("0200001", "0200001"),
}


def _match(segments: Sequence[str], pattern: Sequence[str]) -> dict[str, str] | None:
    if len(segments) != len(pattern):
        return None
    params = {}
    for seg, pat in zip(segments, pattern, strict=False):
        if pat.startswith("{"):
            params[pat[1:-1]] = seg
        elif seg != pat:
            return None
    return params


def _parse_query(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in raw.split("&") if raw else ():
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return tuple(pairs)


def _page_args(endpoint: str, query: dict[str, str]) -> tuple[int, int]:
    size_code, num_code = _PAGING_CODES[endpoint]
    size, num = query.get("pageSize", ""), query.get("pageNum", "")
    if not size.isdigit() or not 1 <= int(size) <= 50:
        raise _Reject(size_code, f"pageSize must be 1-50, got {size!r}")
    if not num.isdigit() or int(num) < 1:
        raise _Reject(num_code, f"pageNum must be greater than 0, got {num!r}")
    return int(num), int(size)


def _envelope(desc: str, **fields: Any) -> dict[str, Any]:
    return {"resultCode": SUCCESS, "resultDesc": desc, "returnCode": SUCCESS, "returnDesc": desc, **fields}


def _text(body: dict[str, Any], key: str, *, required: bool = False, max_len: int | None = None) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise _Reject("02000001", f"{key} is empty")
        return None
    if not isinstance(value, str):
        raise _Reject("02000006", f"{key} must be a string")
    if max_len is not None and len(value) > max_len:
        raise _Reject("02000003", f"{key} exceeds {max_len} characters")
    return value


class FakeISales:
    """A strict, scriptable stand-in for a CC-iSales tenant, on loopback.

    Use it as an async context manager (or :meth:`start` / :meth:`close`); ``base_url``
    is then where it listens. ``credentials`` maps each accepted AK to its SK.

    Scripting: :meth:`inject` queues faults; ``chaos`` adds random ones; ``latency``
    delays every answer; ``on_request`` callbacks see each verified request first (a
    test can change the data between pages there). Evidence: ``requests`` (every
    verified request), ``applied`` (every write applied, in order) and :meth:`applied_counts`.
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
    ) -> None:
        self.credentials = dict(credentials or {DEFAULT_AK: DEFAULT_SK})
        self.obs_codes = _data.obs_codes(obs_code_count)
        self.business_results = _data.business_results(business_result_count, children_per_result)
        self.data_id_count = data_id_count
        start = _dt.datetime(2026, 11, 2, 9, 0, 0)
        self.campaign_calls = {c: _data.call_results(1, c, calls_per_campaign, start) for c in campaigns}
        self.external_results: dict[str, dict[str, Any]] = {}
        self.latency = latency
        self.max_clock_skew = max_clock_skew
        self.faults: collections.deque[Fault] = collections.deque()
        self.chaos = chaos
        self.on_request: list[Callable[[RecordedRequest], None]] = []
        self.requests: list[RecordedRequest] = []
        self.applied: list[AppliedWrite] = []
        self.rejected_auth = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._release = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_def_id = 1645244637
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._listen: tuple[str, int, ssl.SSLContext | None] = ("", 0, None)
        self.base_url = ""

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

    async def push_results(
        self, url: str, records: Sequence[dict[str, Any]] | None = None, *, clock: Clock | None = None
    ) -> list[int]:
        """POST ``records`` to a callback URL the way CC-iSales does, re-pushing until answered 200.

        Pushes again at once after a failure, then every 10 minutes, at most 6 pushes
        (``clock`` lets a test skip the waits). Returns the status of each push (0 when
        the connection failed).
        """
        clock = clock or SystemClock()
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
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._serve(request)
        finally:
            self.in_flight -= 1

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        query = _parse_query(raw_query)
        body = await request.text()
        host = request.headers.get("Host", "")
        authorization = request.headers.get("Authorization", "")
        problem = self._verify(request.method, raw_path, query, host, body, authorization)
        if problem:
            self.rejected_auth += 1
            return web.json_response({"error": "Unauthorized", "detail": problem}, status=401)
        routed = self._route(request.method, raw_path)
        if isinstance(routed, web.Response):
            return routed
        endpoint, vdn_text, params = routed
        recorded = RecordedRequest(endpoint, request.method, raw_path, query, host, authorization, body)
        self.requests.append(recorded)
        for callback in self.on_request:
            callback(recorded)
        fault = self._next_fault(endpoint)
        if fault is not None:
            early = await self._before(fault, request)
            if early is not None:
                return early
        answer = self._answer(endpoint, vdn_text, params, dict(query), body)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind is FaultKind.RESET_AFTER:
            return self._drop(request)
        if fault is not None and fault.kind is FaultKind.TRUNCATE:
            return await self._truncate(request, orjson.dumps(answer))
        if fault is not None and fault.kind is FaultKind.BODY:
            return web.Response(body=fault.body, status=200, content_type=fault.content_type.split(";")[0])
        return web.Response(body=orjson.dumps(answer), content_type="application/json", charset="utf-8")

    def _verify(
        self, method: str, path: str, query: Sequence[tuple[str, str]], host: str, body: str, authorization: str
    ) -> str:
        parts = authorization.split("/")
        if len(parts) != 5 or parts[0] != "auth-v2":
            return "Authorization is not auth-v2/AK/TIMESTAMP/SIGNED_HEADERS/SIGNATURE"
        _, ak, timestamp, signed_headers, _signature = parts
        sk = self.credentials.get(ak)
        if sk is None:
            return "unknown AK"
        if signed_headers != "host":
            return "the signed headers must be 'host'"
        try:
            when = _dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            return "bad timestamp"
        if abs(when.timestamp() - time.time()) > self.max_clock_skew:
            return "timestamp outside the allowed clock skew"
        expected = sign(method=method, path=path, query=query, host=host, body=body, ak=ak, sk=sk, timestamp=timestamp)
        if not hmac.compare_digest(expected.authorization, authorization):
            return "signature mismatch; the server signed: " + canonical_request(
                method, path, query, {"host": host}, body
            )
        return ""

    def _route(self, method: str, raw_path: str) -> tuple[str, str, dict[str, str]] | web.Response:
        if not raw_path.startswith(API_PREFIX):
            return web.Response(status=404, text="not found")
        vdn_text, _, rest = raw_path[len(API_PREFIX) :].partition("/")
        segments = [unquote(s) for s in rest.split("/")]
        for name, route_method, pattern in _ROUTES:
            params = _match(segments, pattern)
            if params is not None:
                if method != route_method:
                    return web.Response(status=405, text="method not allowed")
                return name, vdn_text, params
        return web.Response(status=404, text="not found")

    def _next_fault(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if fault.endpoint in (None, endpoint):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return self.chaos.pick(endpoint) if self.chaos is not None else None

    async def _before(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind is FaultKind.STATUS:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return web.Response(status=fault.status, headers=headers, text=f"fault {fault.status}")
        if fault.kind is FaultKind.RESET_BEFORE:
            return self._drop(request)
        if fault.kind is FaultKind.DELAY:
            await asyncio.sleep(fault.delay)
        if fault.kind is FaultKind.HANG:
            await self._release.wait()
        return None

    @staticmethod
    async def _truncate(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        FakeISales._drop(request)
        return response

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=200)

    def _answer(
        self, endpoint: str, vdn_text: str, params: dict[str, str], query: dict[str, str], body: str
    ) -> dict[str, Any]:
        try:
            if not vdn_text.isdigit() or not 1 <= int(vdn_text) <= 9999:
                raise _Reject("0200001", f"vdnId must be 1-9999, got {vdn_text!r}")
            handler = getattr(self, f"_on_{endpoint}")
            parsed: dict[str, Any] = {}
            if body:
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise _Reject("02000008", "the request body is not JSON") from None
                if not isinstance(parsed, dict):
                    raise _Reject("02000006", "the request body must be a JSON object")
            return handler(params=params, query=query, body=parsed)  # type: ignore[no-any-return]
        except _Reject as reject:
            return {
                "resultCode": reject.code,
                "resultDesc": reject.description,
                "returnCode": reject.code,
                "returnDesc": reject.description,
            }

    # -- endpoints ---------------------------------------------------------------------

    def _paged(self, endpoint: str, query: dict[str, str], items: Sequence[Any], field: str) -> dict[str, Any]:
        num, size = _page_args(endpoint, query)
        chunk = list(items[(num - 1) * size : num * size])
        return _envelope(f"query {endpoint} Success!", **{field: chunk, "totalCount": len(items)})

    def _on_queryOBSResultCode(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        return self._paged("queryOBSResultCode", query, self.obs_codes, "obsCodes")

    def _on_queryBusinessResults(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        return self._paged("queryBusinessResults", query, self.business_results, "data")

    def _on_queryOBSResults(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        listed = [{k: r[k] for k in ("displayResult", "resultCode", "defId")} for r in self.external_results.values()]
        return self._paged("queryOBSResults", query, listed, "data")

    def _on_callBusiResult(self, *, params: dict[str, str], body: dict[str, Any], **_: Any) -> dict[str, Any]:
        data_id = params["dataId"]
        busi_result = _text(body, "busiResult", required=True, max_len=50)
        sub_status = _text(body, "subStatus", max_len=50)
        _text(body, "busiResultDesc")
        _text(body, "workNo")
        if not data_id.isdigit() or not 1 <= int(data_id) <= self.data_id_count:
            raise _Reject("0200033", f"The outbound call data {data_id} does not exist.")
        parent = next((r for r in self.business_results if r["code"] == busi_result), None)
        if parent is None:
            raise _Reject("0200001", f"busiResult {busi_result} is not a defined business result")
        if sub_status is not None and sub_status not in {c["code"] for c in parent["children"]}:
            raise _Reject("0200034", f"The substatus {sub_status} does not match the business result {busi_result}.")
        self.applied.append(AppliedWrite("callBusiResult", data_id, body))
        return {"resultCode": SUCCESS, "resultDesc": "The business result is written back successfully."}

    def _on_callresultdetail(self, *, params: dict[str, str], **_: Any) -> dict[str, Any]:
        call = next((c for c in self.calls() if c["callId"] == params["callId"]), None)
        if call is None:
            raise _Reject("0200007", "The call record ID does not exist.")
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
        return _envelope("Query Success!", data=detail)

    def _on_callresult(self, *, params: dict[str, str], body: dict[str, Any], **_: Any) -> dict[str, Any]:
        calls = self.campaign_calls.get(params["campaignId"])
        if calls is None:
            raise _Reject("0200007", "The campaign does not exist.")
        show_detail = body.get("showDetail", 0)
        if show_detail not in (0, 1):
            raise _Reject("0200001", "showDetail must be 0 or 1")
        begin, end = body.get("beginTime"), body.get("endTime")
        if (begin is None) != (end is None):
            raise _Reject("0200008", "beginTime and endTime must be specified together.")
        if begin is not None:
            try:
                begin_day = _dt.datetime.strptime(str(begin), "%Y-%m-%d")
                end_day = _dt.datetime.strptime(str(end), "%Y-%m-%d")
            except (TypeError, ValueError):
                raise _Reject("0200009", "The time format is incorrect.") from None
            if begin_day >= end_day:
                raise _Reject("0200010", "The start time must be earlier than the end time.")
            if (end_day - begin_day).days > 30:
                raise _Reject("0200011", "The time span cannot exceed 30 days.")
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
            chunk, size, num = calls[:2000], 2000, 1
        else:
            if not isinstance(size, int) or not 1 <= size <= max_size:
                raise _Reject("0200001", f"pageSize must be 1-{max_size} with showDetail={show_detail}")
            if not isinstance(num, int) or num < 1:
                raise _Reject("0200001", "pageNum must be greater than 0")
            chunk = calls[(num - 1) * size : num * size]
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
        return _envelope("Query Success!", data=[{k: c[k] for k in keys} for c in chunk], totalCount=len(calls))

    def _validated_external(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        display = _text(body, "displayResult", required=True)
        codes = body.get("obsCodes")
        if not isinstance(codes, list) or not codes:
            raise _Reject("02000001", "obsCodes is empty")
        known = {c["obsCode"] for c in self.obs_codes}
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise _Reject("0200001", f"unknown obsCodes: {unknown}")
        return display or "", codes

    def _on_createObResult(self, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        result_code = _text(body, "resultCode", max_len=7)
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
        return _envelope("createObResult Success!", defId=def_id)

    def _on_queryObsResultDetail(self, *, params: dict[str, str], **_: Any) -> dict[str, Any]:
        found = self.external_results.get(params["defId"])
        if found is None:
            raise _Reject("0200001", f"defId {params['defId']} does not exist")
        return _envelope("queryObsResultDetail Success!", obResult=dict(found))

    def _on_updateObResult(self, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        def_id = str(body.get("defId") or "")
        if def_id not in self.external_results:
            raise _Reject("0200001", f"defId {def_id!r} does not exist")
        display, codes = self._validated_external(body)
        self.external_results[def_id].update(displayResult=display, obsCodes=codes)
        self.applied.append(AppliedWrite("updateObResult", def_id, body))
        return _envelope("updateObResult Success!")
