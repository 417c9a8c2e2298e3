"""The session layer end to end against the fake server: signing, retries, limits, errors."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import tracemalloc
import warnings

import aiohttp
import anyio
import orjson
import pytest
from aiohttp import web
from aioresponses import aioresponses

from isales_async import (
    AuthenticationError,
    CallFinished,
    CallStarted,
    ClientClosedError,
    ConnectError,
    DeadlineExceededError,
    GaveUp,
    ISalesClient,
    OutcomeUnknownError,
    RateLimitedError,
    ReadTimeoutError,
    RequestSent,
    ResponseFormatError,
    ResponseReceived,
    ResponseTooLargeError,
    RetryBudget,
    RetryPolicy,
    RetryScheduled,
    ServerError,
    Timeouts,
    ValidationError,
)
from isales_async._aiohttp import translated
from isales_async._endpoints import ENDPOINTS
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales, Fault

from .conftest import MakeClient

OBS = "queryOBSResultCode"
WB = "callBusiResult"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_prepared_write_holds_its_body_compactly(client: ISalesClient) -> None:
    """What a write in flight keeps of its body is about the body's length: orjson's
    output (a 4 KiB buffer whatever the body) is not what is kept."""
    session = client._session
    endpoint, body = ENDPOINTS["callBusiResult"], {"busiResult": "B01"}
    tracemalloc.start()
    try:
        calls = [session.prepare(endpoint, {"dataId": str(n)}, (), body) for n in range(100)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert calls[0].body == orjson.dumps(body)
    assert 0 < held / len(calls) < 1024  # the path, URL, body and canonical request: a few hundred bytes


async def test_a_retried_request_is_signed_afresh(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.status_code(503, retry_after="1", endpoint=OBS))
    page = await client.obs_result_codes.page(page_size=10)
    assert len(page.items) == 10
    first, second = server.requests_to(OBS)
    assert first.authorization != second.authorization
    assert first.authorization.split("/")[2] < second.authorization.split("/")[2]  # a later timestamp


async def test_401_is_raised_after_exactly_one_request(make_client: MakeClient, server: FakeISales) -> None:
    async with make_client(sk="not-the-secret") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.obs_result_codes.page()
    assert server.rejected_auth == 1
    assert info.value.status == 401
    assert "clock" in str(info.value)


async def test_429_retry_after_pauses_every_request_of_the_client(make_client: MakeClient, server: FakeISales) -> None:
    clock = FakeClock(autojump=False)
    server.inject(Fault.status_code(429, retry_after="1", endpoint=OBS))
    async with make_client(clock=clock) as client:
        with anyio.fail_after(10):
            first = asyncio.ensure_future(client.obs_result_codes.page(page_size=5))
            await clock.wait_for_sleepers(1)  # the first request met the 429 and waits
            others = [
                asyncio.ensure_future(client.obs_result_codes.page(page_num=n, page_size=5)) for n in (2, 3, 4, 5)
            ]
            await clock.wait_for_sleepers(5)
            assert len(server.requests) == 1  # nobody went out during the pause
            assert clock.sleeper_deadlines == pytest.approx([1.0] * 5)
            clock.advance(1.0)
            pages = await asyncio.gather(first, *others)
    assert [p.page_num for p in pages] == [1, 2, 3, 4, 5]
    assert all(len(p.items) == 5 for p in pages)
    assert len(server.requests) == 6


async def test_429_raises_rate_limited_once_retries_are_spent(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.status_code(429, retry_after="2", endpoint=OBS, times=10))
    with pytest.raises(RateLimitedError) as info:
        await client.obs_result_codes.page()
    assert info.value.retry_after == 2.0
    assert len(server.requests) == client._session.retry.attempts


async def test_a_write_reset_after_sending_is_unknown_and_sent_once(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.reset(after=True, endpoint=WB))
    with pytest.raises(OutcomeUnknownError) as info:
        await client.business_results.write_back(42, "B01")
    assert len(server.requests_to(WB)) == 1
    assert server.applied_counts() == {"42": 1}
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status_code(500),
        Fault.status_code(502),
        Fault.status_code(504),
        Fault.raw_body(b"<html>login</html>", content_type="text/html"),
    ],
    ids=["500", "502", "504", "html-200"],
)
async def test_a_write_of_unknown_fate_is_never_resent(client: ISalesClient, server: FakeISales, fault: Fault) -> None:
    server.inject(fault)
    with pytest.raises(OutcomeUnknownError):
        await client.business_results.write_back(7, "B02", sub_status="B02-1")
    assert len(server.requests_to(WB)) == 1


@pytest.mark.parametrize("fault", [Fault.status_code(503), Fault.status_code(429, retry_after="1")], ids=["503", "429"])
async def test_a_write_refused_unprocessed_is_retried_and_applied_once(
    client: ISalesClient, server: FakeISales, fault: Fault
) -> None:
    server.inject(fault)
    await client.business_results.write_back(8, "B01")
    assert len(server.requests_to(WB)) == 2
    assert server.applied_counts() == {"8": 1}


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status_code(502),
        Fault.status_code(503),
        Fault.status_code(504),
        Fault.reset(after=False),
        Fault.reset(after=True),
    ],
    ids=["502", "503", "504", "reset-before", "reset-after"],
)
async def test_reads_are_retried_through_transient_failures(
    client: ISalesClient, server: FakeISales, fault: Fault
) -> None:
    server.inject(fault)
    page = await client.obs_result_codes.page(page_size=3)
    assert [c.obs_code for c in page.items] == ["00600", "00601", "00602"]
    assert len(server.requests) == 2


async def test_a_read_500_is_not_retried(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.status_code(500))
    with pytest.raises(ServerError):
        await client.obs_result_codes.page()
    assert len(server.requests) == 1


async def test_garbage_200_is_a_format_error(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(b"<html><body>Please log in</body></html>", content_type="text/html"))
    with pytest.raises(ResponseFormatError, match="log in"):
        await client.obs_result_codes.page()


async def test_read_timeout_is_typed_and_retried(make_client: MakeClient, server: FakeISales) -> None:
    server.inject(Fault.hang(endpoint=OBS))
    async with make_client(timeouts=Timeouts(read=0.05, total=1.0)) as client:
        page = await client.obs_result_codes.page(page_size=1)
    assert page.items[0].obs_code == "00600"
    assert len(server.requests) == 2


@pytest.mark.parametrize("timeouts", [Timeouts(read=None, total=0.05), Timeouts(read=0.05)], ids=["total", "read"])
async def test_every_kind_of_timeout_is_a_typed_read_timeout(
    make_client: MakeClient, server: FakeISales, timeouts: Timeouts
) -> None:
    """On Python 3.10 the total timeout raises asyncio.TimeoutError, which is not the builtin."""
    server.inject(Fault.hang(endpoint=OBS), Fault.hang(endpoint=WB))
    async with make_client(timeouts=timeouts, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(ReadTimeoutError):
            await client.obs_result_codes.page()
        with pytest.raises(OutcomeUnknownError) as info:
            await client.business_results.write_back(9, "B01")
    assert isinstance(info.value.__cause__, ReadTimeoutError)


def test_asyncio_timeout_error_is_translated_on_every_python() -> None:
    for error in (asyncio.TimeoutError(), TimeoutError(), aiohttp.ServerTimeoutError("slow")):
        assert isinstance(translated(error, "queryOBSResultCode"), ReadTimeoutError)


async def test_write_timeout_is_unknown(make_client: MakeClient, server: FakeISales) -> None:
    server.inject(Fault.hang(endpoint=WB))
    async with make_client(timeouts=Timeouts(read=0.05, total=1.0)) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.business_results.write_back(9, "B01")
    assert isinstance(info.value.__cause__, ReadTimeoutError)
    assert len(server.requests_to(WB)) == 1


async def test_connection_refused_is_retried_even_for_writes_then_typed(make_client: MakeClient) -> None:
    clock = FakeClock()
    async with make_client(base_url=f"http://127.0.0.1:{free_port()}", clock=clock) as client:
        with pytest.raises(ConnectError):
            await client.business_results.write_back(1, "B01")
    assert len(clock.sleeps) == 3  # four attempts, three waits between them


async def test_retry_budget_stops_retry_storms(make_client: MakeClient, server: FakeISales) -> None:
    server.inject(Fault.status_code(503, times=100))
    async with make_client(retry_budget=RetryBudget(ratio=0.0, capacity=2.0)) as client:
        for _ in range(5):
            with pytest.raises(ServerError):
                await client.obs_result_codes.page()
    assert len(server.requests) == 5 + 2


async def test_with_options_overrides_retry_per_call(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.status_code(503))
    with pytest.raises(ServerError):
        await client.with_options(retry=RetryPolicy(attempts=1)).obs_result_codes.page()
    assert len(server.requests) == 1


async def test_concurrency_limit_bounds_requests_in_flight(make_client: MakeClient, server: FakeISales) -> None:
    server.latency = 0.01
    # The first three are held until the third arrives, so the limit is reached, not just respected.
    server.inject(Fault.hang(endpoint=OBS, times=3))
    server.on_request.append(lambda _: len(server.requests) == 3 and server.release())
    async with make_client(max_concurrency=3) as client:
        await asyncio.gather(*(client.obs_result_codes.page(page_num=n % 5 + 1, page_size=5) for n in range(20)))
    assert server.max_in_flight == 3
    assert len(server.requests) == 20


async def test_callresult_route_limit_spaces_batches_of_ten(client: ISalesClient, server: FakeISales) -> None:
    clock = client._session.clock
    assert isinstance(clock, FakeClock)
    await asyncio.gather(*(client.call_results.page("1001", page_num=n, page_size=10) for n in range(1, 13)))
    assert 1 <= server.max_in_flight <= 10
    spacing = [s for s in clock.sleeps if s > 0]  # the 11th start, and the 12th unless the 11th's moved the clock
    assert spacing in ([pytest.approx(1.001)], [pytest.approx(1.001)] * 2)  # a hair more than the interval


async def test_response_size_is_capped(make_client: MakeClient) -> None:
    async with make_client(max_response_bytes=200) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.obs_result_codes.page(page_size=50)


async def test_hooks_see_every_stage(make_client: MakeClient, server: FakeISales) -> None:
    events: list[object] = []
    server.inject(Fault.status_code(503), Fault.status_code(500))
    async with make_client(hooks=[events.append]) as client:
        with pytest.raises(ServerError):
            await client.obs_result_codes.page()
    kinds = [type(e) for e in events]
    assert kinds == [
        CallStarted,
        RequestSent,
        ResponseReceived,
        RetryScheduled,
        RequestSent,
        ResponseReceived,
        GaveUp,
        CallFinished,
    ]


async def test_a_broken_hook_does_not_break_requests(make_client: MakeClient) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("hook bug")

    async with make_client(hooks=[broken]) as client:
        assert (await client.obs_result_codes.page(page_size=1)).total_count == 120


async def test_the_sk_never_shows(
    make_client: MakeClient, server: FakeISales, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject(Fault.status_code(503), Fault.reset(after=True, endpoint=WB))
    async with make_client() as client:
        await client.obs_result_codes.page()
        errors: list[BaseException] = []
        for call in (client.business_results.write_back(3, "B01"), client.call_results.get("nope")):
            try:
                await call
            except Exception as exc:
                errors.append(exc)
        text = caplog.text + repr(client) + str(client) + "".join(f"{e!r}{e}{e.__cause__!r}" for e in errors)
    assert len(errors) == 2
    assert DEFAULT_SK not in text
    assert "Authorization" not in caplog.text and "auth-v2" not in caplog.text


async def test_path_parameters_are_encoded_once_and_keep_their_segment(
    client: ISalesClient, server: FakeISales
) -> None:
    with pytest.raises(Exception, match="does not exist"):
        await client.call_results.get("a/b c?#%")
    assert server.requests[-1].path.endswith("/callresultdetail/a%2Fb%20c%3F%23%25")
    with pytest.raises(ValidationError, match="call_id"):
        await client.call_results.get("")


@pytest.mark.parametrize("vdn_id", [0, 10000, -1, "1", True])
def test_vdn_id_outside_1_to_9999_is_refused_at_construction(vdn_id: object) -> None:
    with pytest.raises(ValidationError, match="vdn_id"):
        ISalesClient("https://h", ak="a", sk="s", vdn_id=vdn_id)  # type: ignore[arg-type]


def test_header_injection_in_ak_is_refused() -> None:
    with pytest.raises(ValidationError, match="ak"):
        ISalesClient("https://h", ak="a\r\nX-Evil: 1", sk="s", vdn_id=1)


def test_plain_http_and_insecure_tls_warn() -> None:
    with pytest.warns(UserWarning, match="plain http"):
        ISalesClient("http://h:1", ak="a", sk="s", vdn_id=1)
    with pytest.warns(UserWarning, match="verification is disabled"):
        ISalesClient("https://h", ak="a", sk="s", vdn_id=1, insecure=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = ISalesClient("https://h", ak="a", sk="s", vdn_id=1)
    assert client._session._transport._ssl is True


@pytest.mark.sockets
async def test_an_injected_session_is_used_and_left_open(server: FakeISales) -> None:
    async with aiohttp.ClientSession() as session:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = ISalesClient(server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, session=session)
        async with client:
            await client.obs_result_codes.page(page_size=1)
        assert not session.closed


async def test_an_injected_pool_smaller_than_the_limiter_is_flagged() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as session:
        with pytest.warns(UserWarning, match="fewer than max_concurrency=10"):
            ISalesClient("https://h", ak="a", sk="s", vdn_id=1, session=session)


async def test_using_a_client_that_is_not_open_is_a_typed_error(make_client: MakeClient, server: FakeISales) -> None:
    client = make_client()
    with pytest.raises(ClientClosedError, match="async with") as info:
        await client.obs_result_codes.page()
    assert isinstance(info.value, RuntimeError)  # what it was before it had a type
    assert server.requests == []


@pytest.mark.sockets
async def test_requests_after_aclose_are_refused_with_or_without_an_injected_session(server: FakeISales) -> None:
    async with aiohttp.ClientSession() as injected:
        for session in (None, injected):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client = ISalesClient(server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, session=session)
            async with client:
                await client.obs_result_codes.page(page_size=1)
            with pytest.raises(ClientClosedError):
                await client.obs_result_codes.page(page_size=1)
            async with client:  # and open again
                await client.obs_result_codes.page(page_size=1)
        assert not injected.closed
    assert len(server.requests) == 4


@pytest.mark.sockets
async def test_a_closed_injected_session_is_a_typed_error(server: FakeISales) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    client = ISalesClient(server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, session=session)
    async with client:
        with pytest.raises(ClientClosedError, match="injected"):
            await client.obs_result_codes.page()
    assert server.requests == []


async def test_transport_failures_after_sending_via_aioresponses(make_client: MakeClient) -> None:
    url = re.compile(r"^https://isales\.test/.*callBusiResult/5$")
    with aioresponses() as mocked:
        mocked.post(url, exception=aiohttp.ServerDisconnectedError())
        async with make_client(base_url="https://isales.test") as client:
            with pytest.raises(OutcomeUnknownError):
                await client.business_results.write_back(5, "B01")
    assert sum(len(calls) for calls in mocked.requests.values()) == 1


async def test_a_chunked_body_is_read_and_capped(make_client: MakeClient) -> None:
    """A body without Content-Length is read chunk by chunk, under the same size cap."""
    page = orjson.dumps(
        {"resultCode": "0200000", "totalCount": 1, "obsCodes": [{"obsCode": "00600", "obsCodeDesc": "x" * 300}]}
    )

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(page), 64):
            await response.write(page[start : start + 64])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", chunked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with make_client(base_url=f"http://{host}:{port}") as client:
            assert (await client.obs_result_codes.page(page_size=1)).items[0].obs_code == "00600"
        async with make_client(base_url=f"http://{host}:{port}", max_response_bytes=200) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.obs_result_codes.page(page_size=1)
    finally:
        await runner.cleanup()


async def test_a_write_in_flight_at_the_deadline_is_unknown_and_sent_once(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock(autojump=False)
    arrived = asyncio.Event()
    server.on_request.append(lambda _: arrived.set())
    server.inject(Fault.hang(endpoint="callBusiResult"))
    client = make_client(clock=clock, retry=RetryPolicy(deadline=5.0, attempts=4))
    async with client:
        call = asyncio.ensure_future(client.business_results.write_back(42, "B01"))
        try:
            await arrived.wait()
            clock.advance(6.0)
            with pytest.raises(OutcomeUnknownError, match="deadline passed before its answer"):
                await call
        finally:
            server.release()
        assert client._session.in_flight == 0
    assert len(server.requests_to("callBusiResult")) == 1


async def test_a_call_queued_for_the_limiter_past_its_deadline_gives_up_unsent(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock(autojump=False)
    arrived = asyncio.Event()
    server.on_request.append(lambda _: arrived.set())
    server.inject(Fault.hang(endpoint="queryOBSResultCode"))
    client = make_client(clock=clock, max_concurrency=1, retry=RetryPolicy(deadline=5.0, attempts=1))
    async with client:
        holder = asyncio.ensure_future(client.with_options(retry=RetryPolicy(deadline=None)).obs_result_codes.page())
        try:
            await arrived.wait()  # the only slot is taken by a request the server holds
            queued = asyncio.ensure_future(client.business_results.write_back(9, "B01"))
            await asyncio.sleep(0)  # let it reach the limiter
            clock.advance(6.0)
            with pytest.raises(DeadlineExceededError, match="before its request could be sent"):
                await queued
        finally:
            server.release()
            await holder
    assert server.requests_to("callBusiResult") == []
