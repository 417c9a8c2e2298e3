"""The pure mapping from (status, headers, body) to data or a typed error."""

from __future__ import annotations

import datetime as dt
import math

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


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("1000000000", 1e9),
        ("9" * 400, math.inf),  # too large for a float
        ("inf", math.inf),
        ("Infinity", math.inf),
        ("Mon, 23 Nov 2026 12:00:05 GMT", 5.0),
        ("Mon, 23 Nov 2026 12:00:00 GMT", 0.0),
        ("Thu, 01 Jan 2099 00:00:00 GMT", (dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc) - NOW).total_seconds()),
    ],
)
def test_retry_after_values_that_mean_something(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "nan",
        "NaN",
        "-5",
        "-0.5",
        "+5",
        "1e3",
        "1_000",
        "abc",
        "soon",
        "Mon, 23 Nov 2026 11:59:59 GMT",  # a second ago
        "Fri, 01 Jan 1999 00:00:00 GMT",
        "Mon, 99 Nov 2026 12:00:05 GMT",
    ],
)
def test_retry_after_values_that_say_nothing_are_ignored(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


@pytest.mark.parametrize(("header", "seconds"), [("nan", None), ("-5", None), ("inf", math.inf), ("7", 7.0)])
def test_429_and_503_carry_only_meaningful_retry_after(header: str, seconds: float | None) -> None:
    for status, error in ((429, RateLimitedError), (503, ServerError)):
        with pytest.raises(error) as info:
            run(status, b"", headers={"Retry-After": header})
        assert info.value.retry_after == seconds
