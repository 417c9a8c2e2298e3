"""Parsing tolerates what real servers send, through the public API against the fake server,
and says exactly what it could not read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from isales_async import (
    DefLevel,
    ISalesClient,
    ObsResultCode,
    ResponseFormatError,
    Writeback,
    parse_push,
)
from isales_async.testing import FakeISales, Fault

UTC = dt.timezone.utc
PLUS_8 = dt.timezone(dt.timedelta(hours=8))

TIME_VARIANTS = [
    ("2022-02-10 11:45:51", dt.datetime(2022, 2, 10, 11, 45, 51)),
    ("2022-02-10 11:45:51.123", dt.datetime(2022, 2, 10, 11, 45, 51, 123000)),
    ("2022-02-10 11:45:51.1234567", dt.datetime(2022, 2, 10, 11, 45, 51, 123456)),
    ("2022-02-10T11:45:47", dt.datetime(2022, 2, 10, 11, 45, 47)),
    ("2022-02-10T11:45:47Z", dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=UTC)),
    ("2022-02-10T11:45:47.5Z", dt.datetime(2022, 2, 10, 11, 45, 47, 500000, tzinfo=UTC)),
    ("2022-02-10 11:45:47+08:00", dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=PLUS_8)),
    ("2022-02-10T11:45:47+0800", dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=PLUS_8)),
    ("2022-02-10T11:45:47-05:30", dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=dt.timezone(-dt.timedelta(hours=5.5)))),
]


def envelope(**fields: Any) -> bytes:
    return orjson.dumps({"resultCode": "0200000", "resultDesc": "ok", **fields})


def call(index: int, **fields: Any) -> dict[str, Any]:
    return {"callId": f"c-{index}", "callStatus": "6", "callTimeStr": "2026-11-02 09:00:00", **fields}


@pytest.mark.parametrize(("raw", "expected"), TIME_VARIANTS, ids=[raw for raw, _ in TIME_VARIANTS])
async def test_time_variants_are_read(
    client: ISalesClient, server: FakeISales, raw: str, expected: dt.datetime
) -> None:
    server.inject(Fault.raw_body(envelope(data={"callId": "1-1", "callEndTime": raw}), endpoint="callresultdetail"))
    result = await client.call_results.get("1-1")
    assert result.call_end_time == expected
    assert result.call_end_time is not None and result.call_end_time.utcoffset() == expected.utcoffset()


async def test_a_listing_with_every_time_variant_loses_no_record(client: ISalesClient, server: FakeISales) -> None:
    items = [call(i, ackBeginTime=raw) for i, (raw, _) in enumerate(TIME_VARIANTS)]
    server.inject(Fault.raw_body(envelope(data=items, totalCount=len(items)), endpoint="callresult"))
    page = await client.call_results.page("1001", page_size=100, show_detail=True)
    assert [r.ack_begin_time for r in page.items] == [expected for _, expected in TIME_VARIANTS]


def test_a_push_with_time_variants_is_read_whole() -> None:
    body = orjson.dumps([call(1, callBeginTime="2022-02-10 11:45:51.123"), call(2, callEndTime="2022-02-10T11:45:47Z")])
    first, second = parse_push(body)
    assert (first.call_begin_time, second.call_end_time) == (
        dt.datetime(2022, 2, 10, 11, 45, 51, 123000),
        dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=UTC),
    )


async def test_null_children_and_a_non_numeric_def_level_keep_the_page(
    client: ISalesClient, server: FakeISales
) -> None:
    data = [
        {"code": "A", "name": "a", "defLevel": "1", "children": None},
        {"code": "B", "name": "b", "defLevel": "PARENT", "children": [{"code": "B-1", "defLevel": "sub"}]},
        {"code": "C", "name": "c", "defLevel": 3},
    ]
    server.inject(Fault.raw_body(envelope(data=data, totalCount=3), endpoint="queryBusinessResults"))
    results = [r async for r in client.business_results.iter()]
    assert [(r.code, r.def_level, r.children) for r in results[::2]] == [("A", DefLevel.PARENT, ()), ("C", 3, ())]
    assert (results[1].def_level, results[1].children[0].def_level) == ("PARENT", "sub")
    assert type(results[1].children) is tuple


async def test_ob_result_codes_may_be_objects_or_strings(client: ISalesClient, server: FakeISales) -> None:
    detail = {
        "defId": "77",
        "displayResult": "busy",
        "resultCode": "007",
        "obsCodes": [{"obsCode": "00605", "obsCodeDesc": "The switch is busy.", "since": 2023}, "00606"],
    }
    server.inject(Fault.raw_body(envelope(obResult=detail), endpoint="queryObsResultDetail"))
    result = await client.external_results.get("77")
    assert result.obs_codes == ("00605", "00606")
    assert result.obs_code_details == (ObsResultCode("00605", "The switch is busy."), ObsResultCode("00606"))
    assert result.obs_code_details[0].extra == {"since": 2023}


async def test_a_created_result_without_def_id_is_a_success_never_resent(
    client: ISalesClient, server: FakeISales
) -> None:
    server.inject(Fault.raw_body(envelope(resultDesc="createObResult Success!"), endpoint="createObResult"))
    created = await client.external_results.create("7: no answer", ["00602"], result_code="007")
    assert (created.def_id, created.display_result, created.result_code, created.obs_codes) == (
        None,
        "7: no answer",
        "007",
        ("00602",),
    )
    assert len(server.requests_to("createObResult")) == 1
    assert list(server.applied_counts("createObResult").values()) == [1]


async def test_an_unreadable_def_id_on_success_is_kept_not_fatal(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(envelope(defId={"id": 5}), endpoint="createObResult"))
    created = await client.external_results.create("7: no answer", ["00602"])
    assert (created.def_id, created.extra) == (None, {"defId": {"id": 5}})


async def test_optional_fields_not_given_are_left_out_of_every_body(client: ISalesClient, server: FakeISales) -> None:
    await client.business_results.write_back(5, "B01", sub_status="", busi_result_desc="", work_no="")
    await client.business_results.write_back_many([Writeback(6, "B01", sub_status="", work_no="")])
    created = await client.external_results.create("busy", ["00605"], result_code="")
    await client.external_results.update(created.def_id or "", "busy", ["00605"])
    await client.call_results.page("1001", page_size=10, session_id="", custom_field="")
    assert [(r.endpoint, orjson.loads(r.body)) for r in server.requests] == [
        ("callBusiResult", {"busiResult": "B01"}),
        ("callBusiResult", {"busiResult": "B01"}),
        ("createObResult", {"displayResult": "busy", "obsCodes": ["00605"]}),
        ("updateObResult", {"defId": created.def_id, "displayResult": "busy", "obsCodes": ["00605"]}),
        ("callresult", {"pageNum": 1, "pageSize": 10, "showDetail": 0}),
    ]
    assert created.result_code is None


UNREADABLE = [
    (
        "callresult",
        envelope(data=[call(0), call(1), call(2), call(3, callStatus="six")], totalCount=4),
        "data[3].callStatus",
        "six",
    ),
    (
        "queryOBSResultCode",
        envelope(obsCodes=[{"obsCode": "1"}, {"obsCode": "2"}, {"obsCode": {"v": 3}}], totalCount=3),
        "obsCodes[2].obsCode",
        {"v": 3},
    ),
    (
        "queryBusinessResults",
        envelope(data=[{"code": "A"}, {"code": "B", "children": [{"name": "no code"}]}], totalCount=2),
        "data[1].children[0].code",
        None,
    ),
    (
        "queryBusinessResults",
        envelope(data=[{"code": "A", "children": "B-1"}], totalCount=1),
        "data[0].children",
        "B-1",
    ),
    ("callresultdetail", envelope(data={"callId": "1", "callEndTime": "yesterday"}), "data.callEndTime", "yesterday"),
    ("callresultdetail", envelope(data={"callId": "1", "vdnId": True}), "data.vdnId", True),
    (
        "queryObsResultDetail",
        envelope(obResult={"defId": "7", "obsCodes": ["1", {"code": "2"}]}),
        "obResult.obsCodes[1]",
        {"code": "2"},
    ),
    ("queryObsResultDetail", envelope(obResult=None), "obResult", None),
]


async def read(client: ISalesClient, endpoint: str) -> object:
    if endpoint == "callresult":
        return await client.call_results.page("1001")
    if endpoint == "queryOBSResultCode":
        return await client.obs_result_codes.page()
    if endpoint == "queryBusinessResults":
        return await client.business_results.page()
    if endpoint == "callresultdetail":
        return await client.call_results.get("1")
    return await client.external_results.get("7")


@pytest.mark.parametrize(("endpoint", "body", "field", "value"), UNREADABLE, ids=[u[2] for u in UNREADABLE])
async def test_an_unreadable_value_is_named_with_its_endpoint_field_and_raw_value(
    client: ISalesClient, server: FakeISales, endpoint: str, body: bytes, field: str, value: object
) -> None:
    server.inject(Fault.raw_body(body, endpoint=endpoint))
    with pytest.raises(ResponseFormatError) as caught:
        await read(client, endpoint)
    error = caught.value
    assert (error.endpoint, error.field, error.value) == (endpoint, field, value)
    assert field in str(error) and repr(value) in str(error) and endpoint in str(error)
