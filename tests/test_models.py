"""The spec pages' examples parse into the models; unknown fields survive; types are tolerant."""

from __future__ import annotations

import datetime as dt

import cattrs
import pytest

from isales_async import BusinessResult, CallResult, CallStatus, DefLevel, ExternalResult, ObsResultCode
from isales_async._models import make_converter

STRICT = make_converter(strict=True)
LENIENT = make_converter()

OBS_EXAMPLE = [
    {"obsCodeDesc": "The switch is busy.", "obsCode": "00605"},
    {"obsCodeDesc": "The ACD times out.", "obsCode": "00606"},
]
BUSINESS_EXAMPLE = [
    {
        "code": "11111",
        "children": [
            {"code": "12324", "name": "sub02", "defLevel": "2"},
            {"code": "1232", "name": "sub01", "defLevel": "2"},
        ],
        "name": "test111",
        "defLevel": "1",
    },
    {"code": "test", "children": [], "name": "test0903", "defLevel": "1"},
]
DETAIL_EXAMPLE = {
    "callId": "1644464743-1388",
    "called": "88881955",
    "callEndTime": "2022-02-10 11:45:51",
    "vdnId": 8,
    "callStatus": "6",
    "failCode": "00000",
    "resultCode": "OB99999",
    "callBeginTime": "2022-02-10 11:45:47",
    "recordPath": "https://south-aicc-develop.obs.cn-south-   1.myhuaweicloud.com:443/isales/record/x?Signature=uz%3D",
    "ackBeginTime": "2022-02-10 11:45:43",
}


def test_obs_codes_example() -> None:
    codes = [STRICT.structure(item, ObsResultCode) for item in OBS_EXAMPLE]
    assert codes[0] == ObsResultCode("00605", "The switch is busy.")


def test_business_results_example_with_children() -> None:
    parent, empty = (STRICT.structure(item, BusinessResult) for item in BUSINESS_EXAMPLE)
    assert parent.def_level is DefLevel.PARENT
    assert [(c.code, c.def_level) for c in parent.children] == [("12324", DefLevel.CHILD), ("1232", DefLevel.CHILD)]
    assert empty.children == ()


def test_call_result_detail_example() -> None:
    result = STRICT.structure(DETAIL_EXAMPLE, CallResult)
    assert result.call_id == "1644464743-1388"
    assert result.call_status is CallStatus.SUCCEEDED
    assert result.vdn_id == 8
    assert result.call_begin_time == dt.datetime(2022, 2, 10, 11, 45, 47)
    assert result.ack_begin_time is not None and result.ack_begin_time.tzinfo is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("5", CallStatus.FAILED), (6, CallStatus.SUCCEEDED), ("7", 7), ("", None)]
)
def test_call_status_as_string_or_integer(raw: object, expected: object) -> None:
    assert LENIENT.structure({"callStatus": raw}, CallResult).call_status == expected


def test_empty_strings_become_none() -> None:
    result = LENIENT.structure({"callBeginTime": "", "recordPath": "", "vdnId": ""}, CallResult)
    assert (result.call_begin_time, result.record_path, result.vdn_id) == (None, None, None)


def test_unknown_fields_are_kept_not_fatal() -> None:
    code = LENIENT.structure({"obsCode": "1", "newVendorField": {"x": 1}}, ObsResultCode)
    assert code.extra == {"newVendorField": {"x": 1}}
    with pytest.raises(cattrs.ClassValidationError):
        STRICT.structure({"obsCode": "1", "newVendorField": 1}, ObsResultCode)


def test_external_result_def_id_number_becomes_text() -> None:
    assert LENIENT.structure({"defId": 1645244637, "displayResult": "x"}, ExternalResult).def_id == "1645244637"
