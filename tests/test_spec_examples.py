"""The response examples of the spec pages, served verbatim, parse through the public API."""

from __future__ import annotations

import datetime as dt

from isales_async import CallStatus, DefLevel, ISalesClient
from isales_async.testing import FakeISales, Fault

OBS_EXAMPLE = b"""{"obsCodes": [{"obsCodeDesc": "The switch is busy.", "obsCode": "00605"},
  {"obsCodeDesc": "The call is rejected.", "obsCode": "00604"},
  {"obsCodeDesc": "The called party does not answer the call.", "obsCode": "00603"},
  {"obsCodeDesc": "No resource available on the ACD.", "obsCode": "00602"},
  {"obsCodeDesc": "The ACD times out.", "obsCode": "00606"}],
  "returnCode": "0200000", "resultCode": "0200000", "resultDesc": "query queryOBSResultCode Success!",
  "totalCount": 120, "returnDesc": "query queryOBSResultCode Success!"}"""

BUSINESS_EXAMPLE = b"""{"returnCode": "0200000", "data": [
  {"code": "11111", "children": [{"code": "12324", "name": "sub02", "defLevel": "2"}, {"code": "1232", "name": "sub01", "defLevel": "2"}], "name": "test111", "defLevel": "1"},
  {"code": "test", "children": [], "name": "test0903", "defLevel": "1"},
  {"code": "15105671", "children": [{"code": "754646", "name": "Call interrupted", "defLevel": "2"}, {"code": "ob-12", "name": "Multiple local officials", "defLevel": "2"}], "name": "Failed 4up", "defLevel": "1"}],
  "resultCode": "0200000", "resultDesc": "queryBusinessResults Success!", "totalCount": 3, "returnDesc": "queryBusinessResults Success!"}"""

DETAIL_EXAMPLE = b"""{"returnCode": "0200000", "data": {"callId": "1644464743-1388", "called": "88881955",
  "callEndTime": "2022-02-10 11:45:51", "vdnId": 8, "callStatus": "6", "failCode": "00000", "resultCode": "OB99999",
  "callBeginTime": "2022-02-10 11:45:47",
  "recordPath": "https://south-aicc-develop.obs.cn-south-1.myhuaweicloud.com:443/isales/record/A68C/ec96?AccessKeyId=ERUD&Expires=1644484560&Signature=uztQ%3D",
  "ackBeginTime": "2022-02-10 11:45:43"},
  "resultCode": "0200000", "resultDesc": "Query Success!", "returnDesc": "Query Success!"}"""

CREATE_EXAMPLE = b"""{"defId": "1645244637", "returnCode": "0200000", "resultCode": "0200000",
  "resultDesc": "createObResult Success!", "returnDesc": "createObResult Success!"}"""

WRITEBACK_EXAMPLE = b"""{"resultCode": "0200000", "resultDesc": "The business result is written back successfully."}"""


async def test_obs_codes_example(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(OBS_EXAMPLE, endpoint="queryOBSResultCode"))
    page = await client.obs_result_codes.page(page_size=5)
    assert page.total_count == 120
    assert [(c.obs_code, c.obs_code_desc) for c in page.items][:2] == [
        ("00605", "The switch is busy."),
        ("00604", "The call is rejected."),
    ]


async def test_business_results_example(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(BUSINESS_EXAMPLE, endpoint="queryBusinessResults"))
    results = [r async for r in client.business_results.iter()]
    assert [r.code for r in results] == ["11111", "test", "15105671"]
    assert [c.code for c in results[2].children] == ["754646", "ob-12"]
    assert {c.def_level for r in results for c in r.children} == {DefLevel.CHILD}
    assert len(server.requests) == 1  # totalCount 3 on a page of 50: one request


async def test_call_result_detail_example(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(DETAIL_EXAMPLE, endpoint="callresultdetail"))
    result = await client.call_results.get("1644464743-1388")
    assert (result.call_id, result.called, result.vdn_id, result.call_status) == (
        "1644464743-1388",
        "88881955",
        8,
        CallStatus.SUCCEEDED,
    )
    assert result.call_end_time == dt.datetime(2022, 2, 10, 11, 45, 51)
    assert result.record_path is not None and result.record_path.endswith("Signature=uztQ%3D")


async def test_create_external_result_example(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(CREATE_EXAMPLE, endpoint="createObResult"))
    created = await client.external_results.create(
        display_result="7: The call is not answered.", obs_codes=["00602", "00606"], result_code="007"
    )
    assert created.def_id == "1645244637"
    assert (
        server.requests[-1].body
        == '{"resultCode":"007","displayResult":"7: The call is not answered.","obsCodes":["00602","00606"]}'
    )


async def test_write_back_example(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.raw_body(WRITEBACK_EXAMPLE, endpoint="callBusiResult"))
    await client.business_results.write_back(
        123456, "1621474513", sub_status="1048856206", busi_result_desc="1", work_no="2033"
    )
    assert (
        server.requests[-1].body
        == '{"busiResult":"1621474513","subStatus":"1048856206","busiResultDesc":"1","workNo":"2033"}'
    )
