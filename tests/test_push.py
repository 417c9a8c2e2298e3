"""Pushed call results: the pure parser, and the aiohttp and ASGI receivers under the same tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from isales_async import CallResult, CallStatus, PushFormatError, PushReceiver, parse_push
from isales_async._push import RecentIds
from isales_async.receivers import AsgiPushApp, aiohttp_app
from isales_async.testing import FakeClock, FakeISales

PUSH_EXAMPLE = b"""[{"campaignId": "1001", "sessionId": "s-1", "called": "88881955", "callTimeStr": "2022-02-10 11:45:43",
 "callStatus": 6, "failCode": "00000", "vdnId": 8, "callId": "1644464743-1388", "customField": "order-1", "recordPath": "",
 "addedLater": true}]"""


def test_parse_push_into_call_results() -> None:
    (result,) = parse_push(PUSH_EXAMPLE)
    assert isinstance(result, CallResult)
    assert (result.call_id, result.call_status, result.custom_field, result.record_path) == (
        "1644464743-1388",
        CallStatus.SUCCEEDED,
        "order-1",
        None,
    )
    assert result.extra == {"addedLater": True}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"callId": "1"}', b"[1, 2]", b'[{"callStatus": 6}]', b'[{"callId": "1", "callStatus": "x"}]'],
)
def test_malformed_pushes_are_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(PushFormatError):
        parse_push(body)


def test_recent_ids_expire_after_the_window() -> None:
    recent = RecentIds(window=10)
    recent.add("a", now=0)
    recent.expire(now=9.9)
    assert "a" in recent
    recent.expire(now=10)
    assert "a" not in recent


class Calls:
    """The user's callback: records every batch; can fail or block on demand."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failures_left = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, results: Sequence[CallResult]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("the user's database is down")
        self.batches.append([r.call_id or "" for r in results])

    @property
    def processed(self) -> list[str]:
        return [call_id for batch in self.batches for call_id in batch]


def asgi_under_aiohttp(app: AsgiPushApp) -> web.Application:
    """A minimal ASGI server inside aiohttp, so the ASGI receiver is reached over real HTTP."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        sent: dict[str, Any] = {}
        scope = {
            "type": "http",
            "method": request.method,
            "path": request.path,
            "query_string": request.query_string.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
            "client": (request.remote, 0),
        }
        messages = [
            {"type": "http.request", "body": body[:7], "more_body": True},
            {"type": "http.request", "body": body[7:], "more_body": False},
        ]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: Any) -> None:
            sent.setdefault("status", message.get("status"))
            if message["type"] == "http.response.body":
                sent["body"] = message["body"]

        await app(scope, receive, send)
        return web.Response(status=sent["status"], body=sent["body"])

    web_app = web.Application()
    web_app.router.add_route("*", "/", handle)
    return web_app


MakeReceiver = Callable[..., Awaitable[str]]


@pytest_asyncio.fixture(params=["aiohttp", "asgi"])
async def make_receiver(request: pytest.FixtureRequest) -> AsyncIterator[MakeReceiver]:
    runners: list[web.AppRunner] = []
    receivers: list[PushReceiver] = []

    async def make(callback: Calls, **options: Any) -> str:
        options.setdefault("token", "t0ken")
        receiver = PushReceiver(callback, **options)
        receivers.append(receiver)
        app = aiohttp_app(receiver) if request.param == "aiohttp" else asgi_under_aiohttp(AsgiPushApp(receiver))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/"

    yield make
    for receiver in receivers:
        await receiver.aclose()
    for runner in runners:
        await runner.cleanup()


async def post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
        return response.status


async def test_a_push_is_delivered_once(make_receiver: MakeReceiver, isales_server: FakeISales) -> None:
    calls = Calls()
    url = await make_receiver(calls) + "?token=t0ken"
    records = isales_server.push_records(count=10)
    assert await isales_server.push_results(url, records) == [200]
    assert calls.processed == [r["callId"] for r in records]


async def test_a_failed_callback_is_repushed_then_processed_exactly_once(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls = Calls()
    calls.failures_left = 1
    url = await make_receiver(calls) + "?token=t0ken"
    records = isales_server.push_records(count=5)
    assert await isales_server.push_results(url, records) == [500, 200]
    assert calls.processed == [r["callId"] for r in records]


async def test_repushes_follow_the_documented_schedule(make_receiver: MakeReceiver, isales_server: FakeISales) -> None:
    calls = Calls()
    calls.failures_left = 99
    clock = FakeClock()
    url = await make_receiver(calls) + "?token=t0ken"
    assert await isales_server.push_results(url, isales_server.push_records(count=2), clock=clock) == [500] * 6
    assert clock.sleeps == [600.0] * 4
    assert calls.processed == []


async def test_duplicates_within_the_window_are_dropped(make_receiver: MakeReceiver, isales_server: FakeISales) -> None:
    calls = Calls()
    url = await make_receiver(calls) + "?token=t0ken"
    first, overlapping = isales_server.push_records(count=6), isales_server.push_records(count=6, start=3)
    assert await isales_server.push_results(url, first) == [200]
    assert await isales_server.push_results(url, first) == [200]
    assert await isales_server.push_results(url, overlapping) == [200]
    assert calls.processed == [r["callId"] for r in first] + [r["callId"] for r in overlapping[3:]]


async def test_after_the_window_a_push_is_processed_again(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls = Calls()
    clock = FakeClock()
    url = await make_receiver(calls, dedupe_window=60, clock=clock) + "?token=t0ken"
    records = isales_server.push_records(count=1)
    await isales_server.push_results(url, records)
    clock.advance(61)
    await isales_server.push_results(url, records)
    assert len(calls.batches) == 2


@pytest.mark.parametrize("body", [b"{not json", b'{"callId": "1"}', b"[1]"])
async def test_a_malformed_push_gets_400(make_receiver: MakeReceiver, body: bytes) -> None:
    calls = Calls()
    url = await make_receiver(calls) + "?token=t0ken"
    assert await post(url, body) == 400
    assert calls.batches == []


async def test_a_full_queue_answers_503_and_loses_nothing(isales_server: FakeISales) -> None:
    calls = Calls()
    calls.gate = asyncio.Event()
    receiver = PushReceiver(calls, queue_size=1, workers=1, token="t")
    a, b, c = (orjson.dumps(isales_server.push_records(count=1, start=i)) for i in range(3))
    first = asyncio.ensure_future(receiver.handle(a, token="t"))
    await calls.entered.wait()  # the only worker is busy with the first batch
    second = asyncio.ensure_future(receiver.handle(b, token="t"))  # runs first: takes the one queue place
    third = asyncio.ensure_future(receiver.handle(c, token="t"))
    assert (await third).status == 503  # the server will push it again: nothing lost
    calls.gate.set()
    assert [(await first).status, (await second).status] == [200, 200]
    assert len(calls.batches) == 2
    assert (await receiver.handle(c, token="t")).status == 200  # the re-push
    assert len(calls.batches) == 3
    await receiver.aclose()


async def test_a_repush_while_the_first_is_in_progress_waits_for_it(isales_server: FakeISales) -> None:
    calls = Calls()
    calls.gate = asyncio.Event()
    calls.failures_left = 1
    receiver = PushReceiver(calls, token="t")
    body = orjson.dumps(isales_server.push_records(count=2))
    first = asyncio.ensure_future(receiver.handle(body, token="t"))
    await calls.entered.wait()
    again = asyncio.ensure_future(receiver.handle(body, token="t"))
    calls.gate.set()
    assert [(await first).status, (await again).status] == [500, 500]  # neither claims success for the failed batch
    assert (await receiver.handle(body, token="t")).status == 200
    assert len(calls.batches) == 1
    await receiver.aclose()


async def test_token_and_ip_allow_list(make_receiver: MakeReceiver, isales_server: FakeISales) -> None:
    body = orjson.dumps(isales_server.push_records(count=1))
    calls = Calls()
    url = await make_receiver(calls)
    assert await post(url, body) == 403
    assert await post(url + "?token=wrong", body) == 403
    assert await post(url + "?token=t0ken", body) == 200
    far = await make_receiver(Calls(), token=None, allowed_ips=["10.0.0.0/8"])
    assert await post(far, body) == 403
    near = await make_receiver(Calls(), token=None, allowed_ips=["127.0.0.1"])
    assert await post(near, body) == 200


def test_an_unprotected_receiver_warns() -> None:
    with pytest.warns(UserWarning, match="neither a token nor an IP allow-list"):
        PushReceiver(Calls())


async def asgi_call(app: AsgiPushApp, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_asgi_app_lifespan_methods_and_size_cap() -> None:
    calls = Calls()
    app = AsgiPushApp(PushReceiver(calls, token="t"), max_body=10)
    lifespan = await asgi_call(app, {"type": "lifespan"}, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    assert [m["type"] for m in lifespan] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    http = {"type": "http", "method": "GET", "query_string": b"token=t", "client": ("127.0.0.1", 1)}
    assert (await asgi_call(app, http, []))[0]["status"] == 405
    big = [{"type": "http.request", "body": b"[" + b" " * 20 + b"]", "more_body": False}]
    assert (await asgi_call(app, {**http, "method": "POST"}, big))[0]["status"] == 413
    assert await asgi_call(app, {**http, "method": "POST"}, [{"type": "http.disconnect"}]) == []
    assert calls.batches == []
