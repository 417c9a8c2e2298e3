"""The fake server is as strict as the real one: signatures, validation, error codes, and the
refusals of what the real server cannot convert (raw signed requests, and the client where it could send them)."""

from __future__ import annotations

import datetime as dt
import selectors
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from isales_async import ISalesClient, NotFoundError, ValidationError, sign
from isales_async._endpoints import ENDPOINTS
from isales_async._signing import format_timestamp
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales, fake_server_process
from isales_async.testing._process import server_loop

from .conftest import MakeClient

PREFIX = "/rest/isales/v1/openapi/campaigns"
CONTENT_TYPE = "application/json; charset=UTF-8"


async def send(
    server: FakeISales,
    method: str,
    path: str,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    sign_host: str | None = None,
    sign_body: bytes | None = None,
    sign_query: list[tuple[str, str]] | None = None,
    sk: str = DEFAULT_SK,
    when: dt.datetime | None = None,
    content_type: str | None = CONTENT_TYPE,
) -> tuple[int, dict]:
    host = server.base_url.removeprefix("http://")
    query = query or []
    auth = sign(
        method=method,
        path=path,
        query=sign_query if sign_query is not None else query,
        host=sign_host or host,
        body=(sign_body if sign_body is not None else body).decode(),
        ak=DEFAULT_AK,
        sk=sk,
        timestamp=format_timestamp(when or dt.datetime.now(dt.timezone.utc)),
    ).authorization
    raw_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    url = server.base_url + path + (f"?{raw_query}" if raw_query else "")
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            aiohttp.client.URL(url, encoded=True),
            data=body or None,
            headers={"Authorization": auth, "Host": host, **({"Content-Type": content_type} if content_type else {})},
            skip_auto_headers=["Content-Type"],
        ) as response,
    ):
        text = await response.read()
        return response.status, (orjson.loads(text) if response.content_type == "application/json" else {})


OBS_PATH = f"{PREFIX}/1/queryOBSResultCode"
WB_PATH = f"{PREFIX}/1/callBusiResult/5"


async def test_a_correct_signature_is_accepted(isales_server: FakeISales) -> None:
    status, data = await send(isales_server, "GET", OBS_PATH, [("pageSize", "2"), ("pageNum", "1")])
    assert (status, data["resultCode"], len(data["obsCodes"])) == (200, "0200000", 2)


@pytest.mark.parametrize(
    "tamper",
    [
        {"sign_host": "other-host:1"},
        {"sign_query": [("pageSize", "3"), ("pageNum", "1")]},
        {"sk": "wrong"},
        {"when": dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)},
    ],
    ids=["host", "query", "sk", "clock-skew"],
)
async def test_any_mismatch_is_401(isales_server: FakeISales, tamper: dict) -> None:
    status, _ = await send(isales_server, "GET", OBS_PATH, [("pageSize", "2"), ("pageNum", "1")], **tamper)
    assert status == 401
    assert isales_server.requests == []


async def test_a_body_that_differs_from_the_signed_one_is_401(isales_server: FakeISales) -> None:
    body = b'{"busiResult":"B01"}'
    status, _ = await send(isales_server, "POST", WB_PATH, body=body, sign_body=b'{"busiResult": "B01"}')
    assert status == 401
    assert isales_server.applied == []


async def test_missing_authorization_is_401(isales_server: FakeISales) -> None:
    async with aiohttp.ClientSession() as session, session.get(isales_server.base_url + OBS_PATH) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    ("path", "query", "code"),
    [
        (OBS_PATH, [("pageSize", "51"), ("pageNum", "1")], "0200001"),
        (f"{PREFIX}/1/queryBusinessResults", [("pageSize", "0"), ("pageNum", "1")], "0200005"),
        (f"{PREFIX}/1/queryBusinessResults", [("pageSize", "5"), ("pageNum", "0")], "0200007"),
        (f"{PREFIX}/10000/queryOBSResultCode", [("pageSize", "5"), ("pageNum", "1")], "0200001"),
    ],
)
async def test_paging_limits_are_enforced_with_the_endpoint_codes(
    isales_server: FakeISales, path: str, query: list, code: str
) -> None:
    status, data = await send(isales_server, "GET", path, query)
    assert (status, data["resultCode"]) == (200, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"pageSize": 101, "pageNum": 1, "showDetail": 1}, "0200001"),
        ({"beginTime": "2026-11-01"}, "0200008"),
        ({"beginTime": "2026/11/01", "endTime": "2026/11/02"}, "0200009"),
        ({"beginTime": "2026-11-02", "endTime": "2026-11-01"}, "0200010"),
        ({"beginTime": "2026-10-01", "endTime": "2026-11-02"}, "0200011"),
    ],
)
async def test_callresult_error_codes(isales_server: FakeISales, body: dict, code: str) -> None:
    _status, data = await send(isales_server, "POST", f"{PREFIX}/1/callresult/1001", body=orjson.dumps(body))
    assert data["resultCode"] == code


async def test_unknown_routes_and_methods(isales_server: FakeISales) -> None:
    assert (await send(isales_server, "GET", f"{PREFIX}/1/nothingHere"))[0] == 404
    assert (await send(isales_server, "GET", WB_PATH))[0] == 405


CR_PATH = f"{PREFIX}/1/callresult/1001"
CREATE_PATH = f"{PREFIX}/1/createObResult"
UPDATE_PATH = f"{PREFIX}/1/updateObResult"
PAGE = [("pageSize", "2"), ("pageNum", "1")]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/json", "application/json; charset=GBK", "application/x-www-form-urlencoded"],
)
async def test_a_missing_or_wrong_content_type_is_a_conversion_error(
    isales_server: FakeISales, content_type: str | None
) -> None:
    _, read = await send(isales_server, "GET", OBS_PATH, PAGE, content_type=content_type)
    _, write = await send(isales_server, "POST", WB_PATH, body=b'{"busiResult":"B01"}', content_type=content_type)
    assert (read["resultCode"], write["resultCode"]) == ("02000008", "02000008")
    assert isales_server.applied == []


@pytest.mark.parametrize("content_type", ["application/json;charset=utf-8", "Application/JSON; Charset=UTF-8"])
async def test_the_fixed_content_type_is_read_as_a_media_type(isales_server: FakeISales, content_type: str) -> None:
    _, data = await send(isales_server, "GET", OBS_PATH, PAGE, content_type=content_type)
    assert (data["resultCode"], len(data["obsCodes"])) == ("0200000", 2)


REFUSED_BODIES = [
    (WB_PATH, {"busiResult": "B01", "subStatuss": "B01-1"}),
    (WB_PATH, {"busiresult": "B01"}),
    (WB_PATH, {"busiResult": 1}),
    (WB_PATH, {"busiResult": "B01", "workNo": True}),
    (CR_PATH, {"pageNum": True, "pageSize": 10}),
    (CR_PATH, {"pageNum": 1, "pageSize": 10, "showDetail": False}),
    (CR_PATH, {"pageNum": "1", "pageSize": 10}),
    (CR_PATH, {"pageNum": 1, "pageSize": 10.0}),
    (CR_PATH, {"pageNum": 2**31, "pageSize": 10}),
    (CR_PATH, {"pagenum": 1, "pageSize": 10}),
    (CR_PATH, {"beginTime": 20261101, "endTime": 20261102}),
    (CREATE_PATH, {"displayResult": "x", "obsCodes": ["00602"], "resultcode": "7"}),
    (CREATE_PATH, {"displayResult": "x", "obsCodes": [602]}),
    (CREATE_PATH, {"displayResult": "x", "obsCodes": "00602"}),
    (UPDATE_PATH, {"defId": 1645244637, "displayResult": "x", "obsCodes": ["00602"]}),
]


@pytest.mark.parametrize(("path", "body"), REFUSED_BODIES, ids=[orjson.dumps(b).decode() for _, b in REFUSED_BODIES])
async def test_unknown_keys_and_values_of_the_wrong_json_type_are_conversion_errors(
    isales_server: FakeISales, path: str, body: dict
) -> None:
    _, data = await send(isales_server, "POST", path, body=orjson.dumps(body))
    assert data["resultCode"] == "02000008"
    assert isales_server.applied == []


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'"busiResult"'])
async def test_a_post_body_that_is_not_a_json_object_is_a_conversion_error(
    isales_server: FakeISales, body: bytes
) -> None:
    _, data = await send(isales_server, "POST", WB_PATH, body=body)
    assert data["resultCode"] == "02000008"
    assert isales_server.applied == []


@pytest.mark.parametrize(
    ("path", "query", "code"),
    [
        (OBS_PATH, [("pageSize", "2"), ("pageNum", "true")], "02000008"),
        (OBS_PATH, [("pageSize", "two"), ("pageNum", "1")], "02000008"),
        (OBS_PATH, [("pageSize", "2"), ("pageNum", "1.0")], "02000008"),
        (OBS_PATH, [("pageSize", "2"), ("pageNum", "9" * 5000)], "02000008"),
        (OBS_PATH, [("pageSize", "2"), ("pageNum", "1"), ("pagesize", "3")], "02000008"),
        (OBS_PATH, [("pageSize", "2")], "02000001"),
        (f"{PREFIX}/1/callresultdetail/1", [("x", "1")], "02000008"),
        (f"{PREFIX}/one/queryOBSResultCode", PAGE, "02000008"),
    ],
    ids=[
        "boolean-page",
        "word-size",
        "decimal-page",
        "huge-page",
        "unknown-key",
        "missing-page",
        "query-on-detail",
        "word-vdn",
    ],
)
async def test_query_and_path_values_the_server_cannot_convert(
    isales_server: FakeISales, path: str, query: list, code: str
) -> None:
    _, data = await send(isales_server, "GET", path, query)
    assert data["resultCode"] == code


async def test_a_data_id_that_is_not_an_integer_is_a_conversion_error(isales_server: FakeISales) -> None:
    _, data = await send(isales_server, "POST", f"{PREFIX}/1/callBusiResult/5a", body=b'{"busiResult":"B01"}')
    assert data["resultCode"] == "02000008"


async def test_a_get_with_a_body_is_a_conversion_error(isales_server: FakeISales) -> None:
    _, data = await send(isales_server, "GET", OBS_PATH, PAGE, body=b"{}")
    assert data["resultCode"] == "02000008"


async def test_a_call_or_campaign_of_another_vdn_does_not_exist(isales_server: FakeISales) -> None:
    call_id = isales_server.campaign_calls["1001"][0]["callId"]
    _, own = await send(isales_server, "GET", f"{PREFIX}/1/callresultdetail/{call_id}")
    _, other = await send(isales_server, "GET", f"{PREFIX}/2/callresultdetail/{call_id}")
    assert (own["resultCode"], own["data"]["callId"], other["resultCode"]) == ("0200000", call_id, "0200007")
    body = orjson.dumps({"pageNum": 1, "pageSize": 10})
    _, own = await send(isales_server, "POST", CR_PATH, body=body)
    _, other = await send(isales_server, "POST", f"{PREFIX}/2/callresult/1001", body=body)
    assert (own["resultCode"], len(own["data"]), other["resultCode"]) == ("0200000", 10, "0200007")


async def test_through_the_client_a_call_or_campaign_of_another_vdn_is_not_found(
    make_client: MakeClient, server: FakeISales
) -> None:
    call_id = server.campaign_calls["1001"][0]["callId"]
    async with make_client(vdn_id=2) as other:
        with pytest.raises(NotFoundError):
            await other.call_results.get(call_id)
        with pytest.raises(NotFoundError):
            await other.call_results.page("1001")
    server.campaign_vdns["1001"] = 2
    async with make_client(vdn_id=2) as owner:
        assert len((await owner.call_results.page("1001", page_size=10)).items) == 10


async def test_the_client_refuses_before_sending_what_the_server_could_not_convert(
    client: ISalesClient, server: FakeISales
) -> None:
    with pytest.raises(ValidationError, match="page_num"):
        await client.obs_result_codes.page(page_num=True)
    with pytest.raises(ValidationError, match="page_size"):
        await client.call_results.page("1001", page_size="10")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="busi_result"):
        await client.business_results.write_back(5, 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="obs_codes"):
        await client.external_results.create("x", [602])  # type: ignore[list-item]
    assert server.requests == []


async def test_everything_the_client_sends_is_accepted(client: ISalesClient, server: FakeISales) -> None:
    codes = [c.obs_code async for c in client.obs_result_codes.iter(page_size=50)]
    [r async for r in client.business_results.iter(page_size=5)]
    await client.business_results.write_back(5, "B01", sub_status="B01-1", busi_result_desc="d", work_no="2033")
    day = dt.date(2026, 11, 2)
    calls = (
        await client.call_results.page("1001", show_detail=True, begin_time=day, end_time=day + dt.timedelta(1))
    ).items
    await client.call_results.get(calls[0].call_id or "")
    created = await client.external_results.create("busy", codes[:2], result_code="007")
    await client.external_results.update(created.def_id or "", "busy", codes[:1])
    await client.external_results.get(created.def_id or "")
    [r async for r in client.external_results.iter()]
    assert {r.endpoint for r in server.requests} == set(ENDPOINTS)
    assert server.rejected_auth == 0


# -- issue 15: a latency that is what it says, for the benchmarks -------------------------------------


def test_precise_timers_serve_on_select_whose_timeouts_are_not_whole_milliseconds() -> None:
    loop = server_loop(precise_timers=True)
    try:
        assert type(getattr(loop, "_selector", None)) is selectors.SelectSelector
    finally:
        loop.close()


async def test_a_server_process_on_precise_timers_pages_as_the_default_one_does() -> None:
    with fake_server_process(precise_timers=True, latency=0.001, obs_code_count=120) as base_url:
        async with ISalesClient(base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1) as client:
            codes = [code async for code in client.obs_result_codes.iter(page_size=50, prefetch=4)]
    assert len(codes) == 120 and len({code.obs_code for code in codes}) == 120
