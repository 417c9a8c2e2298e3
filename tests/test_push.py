"""Pushed call results: the pure parser, and the receivers (aiohttp, ASGI, ASGI mounted in a
real Starlette app) under the same tests, over real HTTP."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import unittest.mock
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from starlette.applications import Starlette
from starlette.routing import Mount

from isales_async import (
    CallResult,
    CallStatus,
    InvalidPushRecord,
    PushFormatError,
    PushReceiver,
    PushResponse,
    ValidationError,
    parse_push,
    parse_push_batch,
)
from isales_async.push._receiver import _address_allowed, _networks
from isales_async.receivers import AsgiPushApp, aiohttp_app
from isales_async.testing import FakeClock, FakeISales

from .asgi_bridge import asgi_under_aiohttp

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


def test_parse_push_batch_keeps_the_good_records_and_says_why_each_bad_one_was_refused() -> None:
    good = orjson.loads(PUSH_EXAMPLE)[0]
    body = orjson.dumps(
        [
            good,
            {**good, "callStatus": "six"},
            {**good, "vdnId": "eight"},
            "text",
            {**good, "callId": 7},
            {"called": "1"},
        ]
    )
    batch = parse_push_batch(body)
    assert [r.call_id for r in batch.results] == ["1644464743-1388"]
    assert [(r.index, r.raw) for r in batch.invalid] == [
        (1, {**good, "callStatus": "six"}),
        (2, {**good, "vdnId": "eight"}),
        (3, "text"),
        (4, {**good, "callId": 7}),
        (5, {"called": "1"}),
    ]
    reasons = [r.reason for r in batch.invalid]
    assert reasons[0].startswith("is not a call result: callStatus 'six'")
    assert reasons[1].startswith("is not a call result: vdnId 'eight'")
    assert reasons[2:] == ["is not a JSON object but a string", "has callId 7, not a non-empty string", "has no callId"]


@pytest.mark.parametrize("body", [b"{not json", b'{"callId": "1"}', b'"text"', b"null"])
def test_parse_push_batch_refuses_a_body_that_is_not_a_json_list(body: bytes) -> None:
    with pytest.raises(PushFormatError, match=r"^the body "):
        parse_push_batch(body)


def test_the_strict_parse_push_names_the_first_bad_record() -> None:
    with pytest.raises(PushFormatError, match=r"^item 1 is not a JSON object but a number$"):
        parse_push(PUSH_EXAMPLE[:-1] + b", 2, 3]")


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # IPv4 mapped into IPv6, as a dual-stack server reports it
        ("::ffff:10.2.0.1", False),
        ("10.2.0.1", False),
        ("fe80::1%eth0", True),  # a scope id names the interface: matched on the address
        ("fe80::1%", False),
        ("2001:db8::1", False),
        ("not an address", False),
        (None, False),
    ],
)
def test_the_allow_list_matches_mapped_and_scoped_addresses(client_ip: str | None, allowed: bool) -> None:
    assert _address_allowed(client_ip, _networks(["10.1.0.0/16", "fe80::/10"])) is allowed


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"token": ""}, "token"),
        ({"token": "  \t"}, "token"),
        ({"token": None, "allowed_ips": "10.0.0.0/8"}, "allowed_ips"),
        ({"token": None, "allowed_ips": ["10.0.0.300"]}, "allowed_ips"),
        ({"queue_size": 0}, "queue_size"),
        ({"workers": 0}, "workers"),
        ({"max_waiters": -1}, "max_waiters"),
        ({"callback_timeout": 0}, "callback_timeout"),
    ],
)
def test_receiver_options_are_checked_at_construction(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PushReceiver(Calls(), **{"token": "t", **options})
    assert caught.value.field == field


def test_an_async_on_invalid_is_refused() -> None:
    async def on_invalid(record: InvalidPushRecord) -> None: ...

    with pytest.raises(ValidationError) as caught:
        PushReceiver(Calls(), token="t", on_invalid=on_invalid)  # type: ignore[arg-type]
    assert caught.value.field == "on_invalid"


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


class ObservedReceiver(PushReceiver):
    """A receiver that notes each push as it arrives, so a test can wait until one is queued or waiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_ips: list[str | None] = []
        self._arrived = asyncio.Condition()

    async def handle(self, body: bytes, *, token: str | None = None, client_ip: str | None = None) -> PushResponse:
        self.client_ips.append(client_ip)
        async with self._arrived:
            self._arrived.notify_all()
        # A waiter woken here runs only once the push below has been queued (or answered).
        return await super().handle(body, token=token, client_ip=client_ip)

    async def wait_for_pushes(self, count: int) -> None:
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.client_ips) >= count)


MakeReceiver = Callable[..., Awaitable[str]]
RECEIVER_KINDS = ["aiohttp", "asgi", "starlette"]


def receiver_app(kind: str, receiver: PushReceiver) -> tuple[web.Application, str]:
    """The receiver served the way a user serves it, and the path it answers at."""
    if kind == "aiohttp":
        return aiohttp_app(receiver), "/"
    push_app = AsgiPushApp(receiver)
    if kind == "asgi":
        return asgi_under_aiohttp(push_app), "/"
    mounted = Starlette(routes=[Mount("/isales/callback", app=push_app)], lifespan=push_app.lifespan)
    return asgi_under_aiohttp(mounted), "/isales/callback/"


def loopback_socket(*, dual_stack: bool) -> socket.socket:
    """A listening loopback socket; ``dual_stack`` reports IPv4 peers as ``::ffff:127.0.0.1``."""
    if dual_stack:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::ffff:127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
    return sock


@pytest_asyncio.fixture(params=RECEIVER_KINDS)
async def make_receiver(request: pytest.FixtureRequest) -> AsyncIterator[MakeReceiver]:
    """Serve a receiver over real HTTP and return its URL: ``make(callback, **options)``
    builds a ``PushReceiver``; ``receiver=`` serves one already built; ``dual_stack=True``
    listens on an IPv6 socket that takes IPv4 connections."""
    runners: list[web.AppRunner] = []
    receivers: list[PushReceiver] = []

    async def make(
        callback: Calls, *, receiver: PushReceiver | None = None, dual_stack: bool = False, **options: Any
    ) -> str:
        options.setdefault("token", "t0ken")
        receiver = receiver or PushReceiver(callback, **options)
        receivers.append(receiver)
        app, path = receiver_app(request.param, receiver)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = loopback_socket(dual_stack=dual_stack)
        await web.SockSite(runner, sock).start()
        runners.append(runner)
        return f"http://127.0.0.1:{sock.getsockname()[1]}{path}"

    yield make
    for runner in runners:
        await runner.cleanup()
    for receiver in receivers:
        await receiver.aclose()


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
    clock = FakeClock(autojump=False)
    url = await make_receiver(calls, dedupe_window=60, clock=clock) + "?token=t0ken"
    records = isales_server.push_records(count=1)
    await isales_server.push_results(url, records)
    clock.advance(61)
    await isales_server.push_results(url, records)
    assert len(calls.batches) == 2


@pytest.mark.parametrize("body", [b"{not json", b'{"callId": "1"}', b"null"])
async def test_a_body_that_is_not_a_json_list_gets_400(
    make_receiver: MakeReceiver, isales_server: FakeISales, body: bytes
) -> None:
    calls = Calls()
    url = await make_receiver(calls) + "?token=t0ken"
    assert await isales_server.push_results(url, body=body, clock=FakeClock()) == [400] * 6
    assert calls.batches == []


async def test_a_record_repeated_inside_one_push_reaches_the_callback_once(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls = Calls()
    url = await make_receiver(calls) + "?token=t0ken"
    a, b = isales_server.push_records(count=2)
    assert await isales_server.push_results(url, [a, a, b, a], clock=FakeClock()) == [200]
    assert calls.batches == [[a["callId"], b["callId"]]]


async def test_malformed_records_go_to_on_invalid_and_the_good_ones_are_delivered_with_200(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls, invalid = Calls(), []
    url = await make_receiver(calls, on_invalid=invalid.append) + "?token=t0ken"
    good, bad = isales_server.push_records(count=3), isales_server.malformed_push_records(start=3)
    pushed = [good[0], *bad[:4], good[1], *bad[4:], good[2]]
    assert await isales_server.push_results(url, pushed, clock=FakeClock()) == [200]
    assert calls.batches == [[r["callId"] for r in good]]
    assert [(r.index, r.raw) for r in invalid] == [(i, pushed[i]) for i in (1, 2, 3, 4, 6, 7, 8)]
    assert [r.reason.split(":")[0] for r in invalid] == [
        "is not a call result",
        "is not a call result",
        "has no callId",
        "has callId 1644464743, not a non-empty string",
        "is not a JSON object but a string",
        "is not a JSON object but a number",
        "is not a JSON object but null",
    ]
    assert "callStatus 'succeeded'" in invalid[0].reason
    assert "vdnId 'eight'" in invalid[1].reason


async def test_malformed_records_are_logged_at_error_by_default(
    make_receiver: MakeReceiver, isales_server: FakeISales, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()
    url = await make_receiver(calls) + "?token=t0ken"
    (good,), bad = isales_server.push_records(count=1), isales_server.malformed_push_records()[2]
    with caplog.at_level(logging.ERROR, logger="isales_async.push"):
        assert await isales_server.push_results(url, [bad, good], clock=FakeClock()) == [200]
    assert calls.processed == [good["callId"]]
    (logged,) = caplog.records
    assert (logged.name, logged.levelno) == ("isales_async.push", logging.ERROR)
    assert logged.getMessage().startswith("pushed record 0 has no callId;")
    assert logged.getMessage().endswith(orjson.dumps(bad).decode())


async def test_an_on_invalid_that_raises_gets_500_and_the_repush_hands_it_the_records_again(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls, seen = Calls(), []

    def on_invalid(record: InvalidPushRecord) -> None:
        seen.append(record.index)
        if len(seen) == 1:
            raise RuntimeError("the dead-letter table is down")

    url = await make_receiver(calls, on_invalid=on_invalid) + "?token=t0ken"
    (good,), bad = isales_server.push_records(count=1), isales_server.malformed_push_records()[4]
    assert await isales_server.push_results(url, [good, bad], clock=FakeClock()) == [500, 200]
    assert seen == [1, 1]
    assert calls.processed == [good["callId"]]  # the re-push of the delivered record is dropped


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


async def test_an_ipv4_peer_of_a_dual_stack_server_matches_the_ipv4_allow_list(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    body = orjson.dumps(isales_server.push_records(count=1))
    near = ObservedReceiver(Calls(), token=None, allowed_ips=["127.0.0.0/8"])
    far = ObservedReceiver(Calls(), token=None, allowed_ips=["10.0.0.0/8"])
    assert await post(await make_receiver(Calls(), receiver=near, dual_stack=True), body) == 200
    assert await post(await make_receiver(Calls(), receiver=far, dual_stack=True), body) == 403
    assert near.client_ips == far.client_ips == ["::ffff:127.0.0.1"]


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


async def test_a_callback_that_never_returns_times_out_with_503_and_frees_its_worker(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls, clock = Calls(), FakeClock(autojump=False)
    calls.gate = asyncio.Event()
    url = await make_receiver(calls, workers=1, callback_timeout=30, clock=clock) + "?token=t0ken"
    records = orjson.dumps(isales_server.push_records(count=2))
    first = asyncio.ensure_future(post(url, records))
    await calls.entered.wait()
    await clock.wait_for_sleepers(1)
    assert clock.sleeper_deadlines == [30.0]
    clock.advance(30)
    assert await first == 503
    assert calls.batches == []
    calls.gate.set()
    assert await post(url, records) == 200  # the only worker is free, and the call IDs were not marked processed
    assert calls.processed == [r["callId"] for r in isales_server.push_records(count=2)]


async def test_repushes_waiting_for_a_batch_in_progress_are_bounded(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls = Calls()
    calls.gate = asyncio.Event()
    receiver = ObservedReceiver(calls, token="t0ken", max_waiters=2)
    url = await make_receiver(calls, receiver=receiver) + "?token=t0ken"
    body = orjson.dumps(isales_server.push_records(count=2))
    first = asyncio.ensure_future(post(url, body))
    await calls.entered.wait()
    waiting = [asyncio.ensure_future(post(url, body)) for _ in range(2)]
    await receiver.wait_for_pushes(3)
    assert await post(url, body) == 503  # at once: the callback is still blocked
    calls.gate.set()
    assert [await first, *[await w for w in waiting]] == [200, 200, 200]
    assert len(calls.batches) == 1


async def test_a_pusher_that_goes_away_does_not_fail_a_repush_waiting_on_the_same_batch(
    isales_server: FakeISales,
) -> None:
    calls = Calls()
    calls.gate = asyncio.Event()
    receiver = PushReceiver(calls, token="t")
    body = orjson.dumps(isales_server.push_records(count=1))
    first = asyncio.ensure_future(receiver.handle(body, token="t"))
    await calls.entered.wait()
    again = asyncio.ensure_future(receiver.handle(body, token="t"))
    first.cancel()  # the server hung up on the first push
    calls.gate.set()
    assert (await again).status == 200
    assert first.cancelled()
    assert len(calls.batches) == 1
    await receiver.aclose()


async def start_blocked_pushes(
    url: str, receiver: ObservedReceiver, calls: Calls, bodies: Sequence[bytes]
) -> list[asyncio.Future[int]]:
    """Push ``bodies``; the first blocks the only worker in the callback, the others queue behind it."""
    pushes = [asyncio.ensure_future(post(url, bodies[0]))]
    await calls.entered.wait()
    pushes += [asyncio.ensure_future(post(url, body)) for body in bodies[1:]]
    await receiver.wait_for_pushes(len(bodies))
    return pushes


async def test_aclose_drains_the_queued_pushes_and_refuses_new_ones(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls, clock = Calls(), FakeClock(autojump=False)
    calls.gate = asyncio.Event()
    receiver = ObservedReceiver(calls, token="t0ken", workers=1, callback_timeout=None, clock=clock)
    url = await make_receiver(calls, receiver=receiver) + "?token=t0ken"
    a, b, c = (isales_server.push_records(count=1, start=i) for i in range(3))
    pushes = await start_blocked_pushes(url, receiver, calls, [orjson.dumps(a), orjson.dumps(b)])
    closing = asyncio.ensure_future(receiver.aclose(timeout=30))
    await clock.wait_for_sleepers(1)  # draining, for at most 30 s
    assert await post(url, orjson.dumps(c)) == 503
    calls.gate.set()
    await closing
    assert [await p for p in pushes] == [200, 200]
    assert calls.processed == [a[0]["callId"], b[0]["callId"]]
    assert await post(url, orjson.dumps(c)) == 503
    assert len(calls.batches) == 2


async def test_aclose_answers_503_for_what_the_drain_did_not_finish(
    make_receiver: MakeReceiver, isales_server: FakeISales
) -> None:
    calls, clock = Calls(), FakeClock(autojump=False)
    calls.gate = asyncio.Event()
    receiver = ObservedReceiver(calls, token="t0ken", workers=1, callback_timeout=None, clock=clock)
    url = await make_receiver(calls, receiver=receiver) + "?token=t0ken"
    bodies = [orjson.dumps(isales_server.push_records(count=1, start=i)) for i in range(3)]
    pushes = await start_blocked_pushes(url, receiver, calls, bodies)
    closing = asyncio.ensure_future(receiver.aclose(timeout=30))
    await clock.wait_for_sleepers(1)
    clock.advance(30)  # the drain's deadline: the running callback is cancelled, the queued pushes answered
    await closing
    assert [await p for p in pushes] == [503, 503, 503]
    assert calls.batches == []
    assert await post(url, bodies[1]) == 503


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def test_mounted_in_starlette_the_parent_lifespan_drains_and_closes_the_receiver(
    isales_server: FakeISales,
) -> None:
    calls, clock = Calls(), FakeClock(autojump=False)
    calls.gate = asyncio.Event()
    receiver = ObservedReceiver(calls, token="t", workers=1, callback_timeout=None, clock=clock)
    push_app = AsgiPushApp(receiver)
    app = Starlette(routes=[Mount("/isales/callback", app=push_app)], lifespan=push_app.lifespan)
    runner, base = await serve(asgi_under_aiohttp(app))
    a, b = (isales_server.push_records(count=1, start=i) for i in range(2))
    pushes = await start_blocked_pushes(
        f"{base}/isales/callback/?token=t", receiver, calls, [orjson.dumps(a), orjson.dumps(b)]
    )
    stopping = asyncio.ensure_future(runner.cleanup())  # the ASGI server shuts the Starlette app down
    await clock.wait_for_sleepers(1)  # the receiver drains
    calls.gate.set()
    await stopping
    assert [await p for p in pushes] == [200, 200]
    assert calls.processed == [a[0]["callId"], b[0]["callId"]]
    assert await receiver.handle(orjson.dumps(a), token="t") == PushResponse(
        503, "the receiver is shutting down; push again"
    )


async def test_mounted_in_starlette_without_a_lifespan_the_workers_start_on_the_first_push(
    isales_server: FakeISales,
) -> None:
    calls = Calls()
    push_app = AsgiPushApp(PushReceiver(calls, token="t"))
    runner, base = await serve(asgi_under_aiohttp(Starlette(routes=[Mount("/isales", app=push_app)])))
    records = isales_server.push_records(count=3)
    assert await isales_server.push_results(f"{base}/isales/?token=t", records) == [200]
    assert calls.processed == [r["callId"] for r in records]
    await runner.cleanup()
    await push_app.aclose()  # the explicit hook, for apps that run no lifespan
    assert (await push_app.receiver.handle(orjson.dumps(records), token="t")).status == 503


@pytest.mark.parametrize(
    "callback",
    [print, lambda results: None, functools.partial(print), "callback", None],
    ids=["builtin", "lambda", "partial of a plain function", "a string", "None"],
)
def test_a_callback_that_gives_no_coroutine_is_refused(callback: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        PushReceiver(callback, token="t")
    assert caught.value.field == "callback"


def test_async_callables_of_every_kind_are_accepted() -> None:
    async def callback(results: Sequence[CallResult]) -> None: ...

    for accepted in (callback, functools.partial(callback), Calls(), unittest.mock.AsyncMock()):
        PushReceiver(accepted, token="t")


async def test_a_timed_out_callback_keeps_its_call_ids_in_progress_until_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A re-push while the abandoned callback still runs is answered 503, not run beside it;
    once it has ended (cancelled: the batch is not processed), a re-push runs it again."""
    clock = FakeClock(autojump=False)
    entered, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def callback(results: Sequence[CallResult]) -> None:
        runs.append(results[0].call_id or "")
        if len(runs) > 1:
            return
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # its cleanup outlasts the cancellation

    receiver = PushReceiver(callback, token="t", workers=1, callback_timeout=30, clock=clock)
    body = orjson.dumps([{"callId": "a"}])
    first = asyncio.ensure_future(receiver.handle(body, token="t"))
    try:
        await entered.wait()
        await clock.wait_for_sleepers(1)
        clock.advance(30)
        assert (await first).status == 503
        assert (await receiver.handle(body, token="t")).status == 503  # still in progress
        assert runs == ["a"]
        with caplog.at_level(logging.WARNING, logger="isales_async.push"):
            release.set()
            await asyncio.wait(set(receiver._abandoned))  # its end is settled before this returns
        assert "timed out has ended: timed_out" in caplog.text
        assert (await receiver.handle(body, token="t")).status == 200
        assert runs == ["a", "a"]
    finally:
        release.set()
        await receiver.aclose(timeout=0)
