"""Every endpoint through the public API against the fake server, and the bad-input list."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from isales_async import (
    BusinessError,
    CallFinished,
    CallStatus,
    DefLevel,
    Event,
    InvalidParameterError,
    ISalesClient,
    NotFoundError,
    ResponseFormatError,
    ValidationError,
)
from isales_async.testing import FakeISales, Fault, RecordedRequest

from .conftest import MakeClient


async def test_obs_result_codes_iterate_every_code_once(client: ISalesClient, server: FakeISales) -> None:
    codes = [c.obs_code async for c in client.obs_result_codes.iter(page_size=50, prefetch=3)]
    assert codes == [c["obsCode"] for c in server.obs_codes]
    assert len(server.requests) == 3  # 120 items at 50 a page


@pytest.mark.parametrize(("count", "page_size", "requests"), [(0, 50, 1), (1, 50, 1), (100, 50, 2), (100, 7, 15)])
async def test_obs_pagination_totals(
    make_client: MakeClient, server: FakeISales, count: int, page_size: int, requests: int
) -> None:
    server.obs_codes = server.obs_codes[:count] if count <= 120 else server.obs_codes
    async with make_client() as client:
        codes = [c async for c in client.obs_result_codes.iter(page_size=page_size, prefetch=2)]
    assert len(codes) == count
    assert len(server.requests) == requests


async def test_pagination_follows_a_total_that_drifts(client: ISalesClient, server: FakeISales) -> None:
    def grow_after_first_page(request: RecordedRequest) -> None:
        if len(server.requests) == 2:
            server.obs_codes = [*server.obs_codes, {"obsCode": "99999", "obsCodeDesc": "late"}]

    server.obs_codes = server.obs_codes[:100]
    server.on_request.append(grow_after_first_page)
    codes = [c.obs_code async for c in client.obs_result_codes.iter(page_size=50)]
    assert len(codes) == 101 and codes[-1] == "99999"
    assert len(server.requests) == 3


async def test_early_close_with_prefetch_leaves_no_request_running(client: ISalesClient, server: FakeISales) -> None:
    server.latency = 0.005
    seen = []
    codes = client.obs_result_codes.iter(page_size=10, prefetch=4)
    async with contextlib.aclosing(codes):
        async for code in codes:
            seen.append(code)
            if len(seen) == 15:
                break
    assert client._session.in_flight == 0  # no request of ours is in flight
    assert 2 <= len(server.requests) <= 5  # pages 1-2 consumed, then pages 2-5 held: never all 12


async def test_a_consumer_cancelled_while_the_pager_cancels_its_prefetch_stays_cancelled(
    make_client: MakeClient, server: FakeISales
) -> None:
    """The consumer leaves early, and while the pager waits for its cancelled prefetches to
    end, the consumer itself is cancelled: that cancellation must reach it, once no request
    is left running, instead of being taken for one of the prefetches' own."""
    consumer: asyncio.Future[None] | None = None
    prefetched = asyncio.Event()
    finished_normally = False

    def hang_after_the_first_page(request: RecordedRequest) -> None:
        if len(server.requests) == 2:
            server.inject(Fault.hang(endpoint="queryOBSResultCode", times=3))
        if len(server.requests) == 4:
            prefetched.set()  # pages 2-4 asked for, and never answered

    def cancel_the_consumer(event: Event) -> None:
        # A prefetch ends cancelled while the pager awaits it: the moment of the defect.
        if isinstance(event, CallFinished) and event.error == "CancelledError" and consumer is not None:
            consumer.cancel()

    async def consume() -> None:
        nonlocal finished_normally
        codes = client.obs_result_codes.iter(page_size=10, prefetch=4)
        async with contextlib.aclosing(codes):
            async for _ in codes:
                await prefetched.wait()
                break
        finished_normally = True

    server.on_request.append(hang_after_the_first_page)
    client = make_client(hooks=[cancel_the_consumer])
    async with client:
        consumer = asyncio.ensure_future(consume())
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert consumer.cancelled() and not finished_normally
        assert client._session.in_flight == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}
    assert len(server.requests) == 4


async def test_page_returns_items_and_total(client: ISalesClient) -> None:
    page = await client.business_results.page(page_num=2, page_size=5)
    assert (page.page_num, page.page_size, page.total_count) == (2, 5, 12)
    assert [b.code for b in page.items] == ["B06", "B07", "B08", "B09", "B10"]


async def test_business_results_have_typed_children(client: ISalesClient) -> None:
    results = [r async for r in client.business_results.iter()]
    assert len(results) == 12
    assert results[0].code == "B01" and results[0].def_level is DefLevel.PARENT
    assert [c.code for c in results[0].children] == ["B01-1", "B01-2", "B01-3"]
    assert all(c.def_level is DefLevel.CHILD for c in results[0].children)


async def test_write_back_applies_once(client: ISalesClient, server: FakeISales) -> None:
    await client.business_results.write_back(
        123456, busi_result="B03", sub_status="B03-2", busi_result_desc="1", work_no="2033"
    )
    assert server.applied_counts() == {"123456": 1}
    assert server.applied[0].body == {
        "busiResult": "B03",
        "subStatus": "B03-2",
        "busiResultDesc": "1",
        "workNo": "2033",
    }


async def test_write_back_business_errors_are_typed(client: ISalesClient) -> None:
    with pytest.raises(NotFoundError) as missing:
        await client.business_results.write_back(99_000_000, "B01")
    assert missing.value.code == "0200033"
    with pytest.raises(InvalidParameterError) as mismatch:
        await client.business_results.write_back(1, "B01", sub_status="B02-1")
    assert mismatch.value.code == "0200034"


async def test_call_result_detail(client: ISalesClient, server: FakeISales) -> None:
    expected = server.campaign_calls["1001"][3]
    result = await client.call_results.get(expected["callId"])
    assert result.call_id == expected["callId"]
    assert result.call_status is CallStatus.FAILED
    assert result.call_begin_time is None  # the failed call was never connected: "" becomes None
    with pytest.raises(NotFoundError) as info:
        await client.call_results.get("0-0")
    assert info.value.code == "0200007" and "does not exist" in info.value.meaning


async def test_campaign_call_results_page_through_the_body(client: ISalesClient, server: FakeISales) -> None:
    results = [r async for r in client.call_results.iter("1001", page_size=100, show_detail=True, prefetch=2)]
    assert [r.call_id for r in results] == [c["callId"] for c in server.campaign_calls["1001"]]
    bodies = [r.body for r in server.requests_to("callresult")]
    assert len(bodies) == 3 and all('"pageSize":100' in b and '"showDetail":1' in b for b in bodies)
    assert results[0].custom_field == "order-0"


async def test_campaign_call_results_filters_and_errors(client: ISalesClient) -> None:
    day = dt.date(2026, 11, 2)
    page = await client.call_results.page("1002", page_size=500, begin_time=day, end_time=day + dt.timedelta(days=1))
    assert page.total_count == 250 and len(page.items) == 250
    with pytest.raises(NotFoundError):
        await client.call_results.page("4040")


async def test_external_results_lifecycle(client: ISalesClient, server: FakeISales) -> None:
    created = await client.external_results.create(
        display_result="7: The call is not answered.", obs_codes=["00602", "00606"], result_code="007"
    )
    assert created.def_id == "1645244637"
    fetched = await client.external_results.get(created.def_id)
    assert (fetched.display_result, fetched.result_code, list(fetched.obs_codes)) == (
        "7: The call is not answered.",
        "007",
        ["00602", "00606"],
    )
    await client.external_results.update(created.def_id, "7: no answer", ["00603"])
    listed = [r async for r in client.external_results.iter()]
    assert [(r.def_id, r.display_result) for r in listed] == [(created.def_id, "7: no answer")]
    with pytest.raises(BusinessError):
        await client.external_results.create("x", ["12345"])
    assert server.applied_counts("createObResult") == {created.def_id: 1}


BAD_INPUTS = [
    ("page_size", lambda c: c.obs_result_codes.page(page_size=0)),
    ("page_size", lambda c: c.business_results.page(page_size=51)),
    ("page_num", lambda c: c.external_results.page(page_num=0)),
    ("page_size", lambda c: c.obs_result_codes.iter(page_size=51)),
    ("busi_result", lambda c: c.business_results.write_back(1, "")),
    ("busi_result", lambda c: c.business_results.write_back(1, "x" * 51)),
    ("sub_status", lambda c: c.business_results.write_back(1, "B01", sub_status="y" * 51)),
    ("data_id", lambda c: c.business_results.write_back("12a", "B01")),
    ("data_id", lambda c: c.business_results.write_back(0, "B01")),
    ("result_code", lambda c: c.external_results.create("shown", ["00602"], result_code="12345678")),
    ("display_result", lambda c: c.external_results.create("", ["00602"])),
    ("obs_codes", lambda c: c.external_results.create("shown", [])),
    ("obs_codes", lambda c: c.external_results.update("1", "shown", "00602")),
    ("begin_time", lambda c: c.call_results.page("1001", begin_time=dt.date(2026, 1, 2))),
    ("begin_time", lambda c: c.call_results.page("1001", begin_time=dt.date(2026, 1, 2), end_time=dt.date(2026, 1, 1))),
    ("end_time", lambda c: c.call_results.page("1001", begin_time=dt.date(2026, 1, 1), end_time=dt.date(2026, 2, 1))),
    ("page_size", lambda c: c.call_results.page("1001", page_size=101, show_detail=True)),
    ("page_size", lambda c: c.call_results.iter("1001", page_size=501)),
    ("call_id", lambda c: c.call_results.get("")),
    ("call_id", lambda c: c.call_results.get("..")),
]


@pytest.mark.parametrize(("field", "call"), BAD_INPUTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_INPUTS)])
async def test_bad_input_is_refused_before_sending(client: ISalesClient, server: FakeISales, field: str, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as info:
        result = call(client)
        if asyncio.iscoroutine(result):
            await result
    assert info.value.field == field
    assert server.requests == []


async def test_callresult_page_size_up_to_500_without_detail(client: ISalesClient) -> None:
    page = await client.call_results.page("1001", page_size=500)
    assert len(page.items) == 250


@pytest.mark.parametrize(
    "body",
    [
        b'{"resultCode": "0200000", "obsCodes": "not a list", "totalCount": 1}',
        b'{"resultCode": "0200000", "obsCodes": [{"obsCodeDesc": "no code"}], "totalCount": 1}',
        b'{"resultCode": "0200000", "obsCodes": [], "totalCount": "many"}',
    ],
    ids=["list-not-a-list", "item-missing-its-code", "total-not-a-number"],
)
async def test_a_body_the_models_cannot_take_is_a_format_error(
    client: ISalesClient, server: FakeISales, body: bytes
) -> None:
    server.inject(Fault.raw_body(body, endpoint="queryOBSResultCode"))
    with pytest.raises(ResponseFormatError, match="queryOBSResultCode"):
        await client.obs_result_codes.page()


async def test_a_detail_the_model_cannot_take_is_a_format_error(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(b'{"resultCode": "0200000", "data": {"callId": "1", "callEndTime": "yesterday"}}'))
    with pytest.raises(ResponseFormatError, match="CallResult"):
        await client.call_results.get("1")
