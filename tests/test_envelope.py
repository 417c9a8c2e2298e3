"""The pure mapping from (status, headers, body) to data or a typed error."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from isales_async import (
    AuthenticationError,
    BusinessError,
    HTTPStatusError,
    InvalidParameterError,
    NotFoundError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
)
from isales_async._endpoints import ENDPOINTS
from isales_async._envelope import decipher, parse_retry_after

NOW = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.timezone.utc)
OBS = ENDPOINTS["queryOBSResultCode"]


def run(status: int, body: object, endpoint: str = "queryOBSResultCode", headers: dict | None = None) -> dict:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return decipher(ENDPOINTS[endpoint], status, headers or {}, raw, NOW)


def test_success_returns_the_object() -> None:
    data = run(200, {"resultCode": "0200000", "totalCount": 3})
    assert data["totalCount"] == 3


def test_return_code_alone_is_enough() -> None:
    assert run(200, {"returnCode": "0200000"})["returnCode"] == "0200000"


def test_failing_code_raises_business_error_with_code_and_text() -> None:
    with pytest.raises(BusinessError) as info:
        run(200, {"resultCode": "0200999", "resultDesc": "Failed"}, "callBusiResult")
    assert (info.value.code, info.value.description, info.value.endpoint) == ("0200999", "Failed", "callBusiResult")


def test_failing_return_code_beside_successful_result_code_raises() -> None:
    with pytest.raises(BusinessError):
        run(200, {"resultCode": "0200000", "returnCode": "0200001"})


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("queryBusinessResults", InvalidParameterError),
        ("callresultdetail", NotFoundError),
        ("callresult", NotFoundError),
    ],
)
def test_0200007_means_what_its_endpoint_says(endpoint: str, error: type) -> None:
    with pytest.raises(error) as info:
        run(200, {"resultCode": "0200007", "resultDesc": "x"}, endpoint)
    assert type(info.value) is error


def test_writeback_codes() -> None:
    with pytest.raises(NotFoundError):
        run(200, {"resultCode": "0200033"}, "callBusiResult")
    with pytest.raises(InvalidParameterError):
        run(200, {"resultCode": "0200034"}, "callBusiResult")


def test_401_names_the_usual_causes() -> None:
    with pytest.raises(AuthenticationError) as info:
        run(401, b"")
    for cause in ("AK", "clock", "Host"):
        assert cause in str(info.value)


def test_429_carries_retry_after() -> None:
    with pytest.raises(RateLimitedError) as info:
        run(429, b"", headers={"Retry-After": "2"})
    assert info.value.retry_after == 2.0


def test_5xx_and_other_4xx() -> None:
    with pytest.raises(ServerError):
        run(502, b"bad gateway")
    with pytest.raises(HTTPStatusError) as info:
        run(404, b"nope")
    assert info.value.status == 404


@pytest.mark.parametrize("body", [b"<html>login</html>", b"", b"[1, 2]", b'"text"', b'{"resultCode": ', b"{}"])
def test_a_2xx_that_is_not_the_envelope_is_a_format_error(body: bytes) -> None:
    with pytest.raises(ResponseFormatError):
        run(200, body)


def test_retry_after_forms() -> None:
    assert parse_retry_after("3", NOW) == 3.0
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:05 GMT", NOW) == 5.0
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
