"""The transport seam: the memory transport as users get it, and a transport of their own."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
import yarl
from multidict import CIMultiDict

from isales_async import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    Event,
    ISalesClient,
    OutcomeUnknownError,
    RateLimitedError,
    ReadTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    RetryPolicy,
    RetryScheduled,
    Timeouts,
    Transport,
    TransportRequest,
    TransportResponse,
    ValidationError,
    Writeback,
)
from isales_async._aiohttp import _URL_CACHE_SIZE, AiohttpTransport
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales, Fault, MemoryTransport

BASE_URL = "https://isales.test"


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection or listen fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a socket was used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_server", refuse)
    yield


def memory_client(server: FakeISales, **options: Any) -> ISalesClient:
    settings: dict[str, Any] = {"ak": DEFAULT_AK, "sk": DEFAULT_SK, "vdn_id": 1, "clock": FakeClock()}
    settings.update(options)
    return ISalesClient(BASE_URL, transport=server.transport(), **settings)


async def test_a_unit_test_needs_no_port_and_no_running_server(no_sockets: None) -> None:
    server = FakeISales(obs_code_count=7)  # never started
    async with ISalesClient(BASE_URL, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, transport=server.transport()) as client:
        codes = [code.obs_code async for code in client.obs_result_codes.iter(page_size=3)]
        await client.business_results.write_back(5, "B01", sub_status="B01-1")
    assert codes == [code["obsCode"] for code in server.obs_codes]
    assert server.base_url == ""
    assert [(w.endpoint, w.key) for w in server.applied] == [("callBusiResult", "5")]
    assert [r.endpoint for r in server.requests] == ["queryOBSResultCode"] * 3 + ["callBusiResult"]


async def test_the_memory_transport_is_a_transport() -> None:
    transport = FakeISales().transport()
    assert isinstance(transport, MemoryTransport)
    assert isinstance(transport, Transport)


async def test_the_fake_checks_every_signature_in_memory(no_sockets: None) -> None:
    server = FakeISales()
    async with memory_client(server, sk="not-the-secret") as client:
        with pytest.raises(AuthenticationError):
            await client.obs_result_codes.page()
    assert server.rejected_auth == 1
    assert server.requests == []


async def test_status_faults_and_retry_after_in_memory(no_sockets: None) -> None:
    server = FakeISales()
    events: list[Event] = []
    server.inject(Fault.status_code(503, retry_after="7"))
    async with memory_client(server, hooks=[events.append]) as client:
        page = await client.obs_result_codes.page(page_size=2)
        assert len(page.items) == 2
        assert [event.delay for event in events if isinstance(event, RetryScheduled)] == [7.0]
        server.inject(Fault.status_code(429, retry_after="1", times=4))
        with pytest.raises(RateLimitedError) as info:
            await client.obs_result_codes.page()
    assert info.value.retry_after == 1.0
    assert len(server.requests) == 2 + 4


async def test_a_reset_after_processing_is_an_unknown_write_applied_once(no_sockets: None) -> None:
    server = FakeISales()
    server.inject(Fault.reset(after=True))
    async with memory_client(server) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.business_results.write_back(9, "B02")
    assert isinstance(info.value.__cause__, ConnectionLostError)
    assert server.applied_counts() == {"9": 1}
    assert len(server.requests_to("callBusiResult")) == 1


async def test_a_reset_before_processing_and_a_truncated_body_are_lost_connections(no_sockets: None) -> None:
    server = FakeISales()
    once = RetryPolicy(attempts=1)
    async with memory_client(server, retry=once) as client:
        server.inject(Fault.reset(after=False))
        with pytest.raises(ConnectionLostError, match="before answering"):
            await client.obs_result_codes.page()
        server.inject(Fault.truncated())
        with pytest.raises(ConnectionLostError, match="half the body"):
            await client.obs_result_codes.page()
        server.inject(Fault.reset(after=False))
        assert len((await client.with_options(retry=RetryPolicy()).obs_result_codes.page(page_size=1)).items) == 1


async def test_a_hang_past_the_timeout_is_a_read_timeout_and_release_lets_it_go(no_sockets: None) -> None:
    server = FakeISales()
    fast = Timeouts(total=0.05)
    async with memory_client(server, timeouts=fast, retry=RetryPolicy(attempts=1)) as client:
        server.inject(Fault.hang())
        with pytest.raises(ReadTimeoutError):
            await client.obs_result_codes.page()
        assert server.in_flight == 0
        server.inject(Fault.hang())
        arrived = asyncio.Event()
        server.on_request.append(lambda _: arrived.set())
        held = asyncio.ensure_future(client.with_options(timeouts=Timeouts()).obs_result_codes.page(page_size=1))
        await arrived.wait()
        server.release()
        assert len((await held).items) == 1


async def test_bodies_in_memory_are_decoded_and_bounded(no_sockets: None) -> None:
    server = FakeISales()
    once = RetryPolicy(attempts=1)
    async with memory_client(server, retry=once, max_response_bytes=200_000) as client:
        for encoding in ("gzip", "deflate"):
            server.inject(Fault.compressed(encoding=encoding, padding=100_000))
            assert len((await client.obs_result_codes.page(page_size=3)).items) == 3
            server.inject(Fault.compressed(encoding=encoding, padding=1 << 30))  # a GiB bomb
            with pytest.raises(ResponseTooLargeError, match="decoded response exceeds the 200000-byte cap"):
                await client.obs_result_codes.page()
        server.inject(Fault.raw_body(b" " * 200_001))
        with pytest.raises(ResponseTooLargeError, match="200001 bytes"):
            await client.obs_result_codes.page()
        server.inject(Fault.raw_body(b"<html>login</html>", content_type="text/html"))
        with pytest.raises(ResponseFormatError):
            await client.obs_result_codes.page()


async def test_a_memory_client_refuses_requests_until_opened_and_after_closing() -> None:
    server = FakeISales()
    client = memory_client(server)
    with pytest.raises(ClientClosedError, match="async with"):
        await client.obs_result_codes.page()
    async with client:
        await client.obs_result_codes.page(page_size=1)
    with pytest.raises(ClientClosedError):
        await client.obs_result_codes.page()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("ssl", ssl.create_default_context()), ("ca_file", "ca.pem"), ("insecure", True), ("trust_env", True)],
)
def test_options_of_the_aiohttp_transport_are_refused_beside_a_transport(option: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ISalesClient(BASE_URL, ak="a", sk="s", vdn_id=1, transport=FakeISales().transport(), **{option: value})
    assert info.value.field == option


async def test_a_session_beside_a_transport_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValidationError) as info:
            ISalesClient(BASE_URL, ak="a", sk="s", vdn_id=1, transport=FakeISales().transport(), session=session)
    assert info.value.field == "session"


def test_a_transport_must_be_one() -> None:
    with pytest.raises(ValidationError) as info:
        ISalesClient(BASE_URL, ak="a", sk="s", vdn_id=1, transport=object())  # type: ignore[arg-type]
    assert info.value.field == "transport"


class CannedTransport:
    """A user's own transport: records what it is given and answers one canned envelope."""

    def __init__(self) -> None:
        self.sent: list[TransportRequest] = []
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def aclose(self) -> None:
        self.closed += 1

    def check_usable(self, endpoint: str) -> None:
        pass

    async def send(self, request: TransportRequest) -> TransportResponse:
        self.sent.append(request)
        body = {"resultCode": "0200000", "obsCodes": [{"obsCode": "X1", "obsCodeDesc": "one"}], "totalCount": 1}
        return TransportResponse(200, CIMultiDict({"Content-Type": "application/json"}), orjson.dumps(body))


async def test_a_transport_of_ones_own_gets_the_signed_request_and_its_bounds() -> None:
    transport = CannedTransport()
    timeouts = Timeouts(total=5.0)
    async with ISalesClient(
        BASE_URL, ak="a", sk="s", vdn_id=3, transport=transport, timeouts=timeouts, max_response_bytes=1234
    ) as client:
        page = await client.obs_result_codes.page(page_size=5)
    assert [code.obs_code for code in page.items] == ["X1"]
    (request,) = transport.sent
    assert (request.endpoint, request.method, request.body) == ("queryOBSResultCode", "GET", None)
    assert request.url == f"{BASE_URL}/rest/isales/v1/openapi/campaigns/3/queryOBSResultCode?pageSize=5&pageNum=1"
    assert request.headers["Host"] == "isales.test"
    assert request.headers["Authorization"].startswith("auth-v2/a/")
    assert (request.timeouts, request.max_response_bytes) == (timeouts, 1234)
    assert (transport.opened, transport.closed) == (1, 1)


async def test_a_batch_writes_back_through_the_memory_transport(no_sockets: None) -> None:
    server = FakeISales()
    async with memory_client(server) as client:
        report = await client.business_results.write_back_many(
            [Writeback(i, "B01") for i in range(1, 21)], concurrency=5
        )
    assert (len(report.succeeded), report.failed, report.unknown) == (20, [], [])
    assert sorted(server.applied_counts().items()) == sorted((str(i), 1) for i in range(1, 21))


def test_the_transport_keeps_each_url_parsed_once_within_a_bound() -> None:
    """A URL sent again is the same parsed object (aiohttp reads its parts once); unique
    paths, as a batch of writes has, never grow the cache past its bound."""
    transport = AiohttpTransport(
        yarl.URL("http://127.0.0.1:1"), ssl=True, session=None, max_concurrency=1, trust_env=False
    )
    url = "http://127.0.0.1:1/rest/isales/v1/openapi/campaigns/1/queryOBSResultCode?pageSize=50&pageNum=1"
    assert transport._url(url) is transport._url(url)
    assert str(transport._url(url)) == url
    for n in range(3 * _URL_CACHE_SIZE):
        assert transport._url(f"http://127.0.0.1:1/callBusiResult/{n}").raw_path == f"/callBusiResult/{n}"
        assert len(transport._urls) <= _URL_CACHE_SIZE
