"""The fake server is as strict as the real one: signatures, validation, error codes."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from isales_async import sign
from isales_async._signing import format_timestamp
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales

PREFIX = "/rest/isales/v1/openapi/campaigns"


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
            headers={"Authorization": auth, "Host": host},
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
