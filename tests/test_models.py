"""The spec pages' examples parse into the models; unknown fields survive; types are tolerant;
the strict converter of the tests and the production hooks agree."""

from __future__ import annotations

import datetime as dt
import pickle

import attrs
import cattrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_async import BusinessResult, CallResult, CallStatus, DefLevel, ExternalResult, ObsResultCode
from isales_async._models import (
    Unreadable,
    _parse_time_variant,
    explain,
    make_converter,
    parse_time,
    structure_items,
)

STRICT = make_converter(strict=True)
LENIENT = make_converter()
_MODEL_CLASSES = (ObsResultCode, BusinessResult, CallResult, ExternalResult)

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


@pytest.mark.parametrize("converter", [STRICT, LENIENT], ids=["strict", "lenient"])
@pytest.mark.parametrize("raw", [7, "7", 0, -3])
def test_an_undocumented_call_status_is_still_a_call_status(converter: cattrs.Converter, raw: object) -> None:
    status = converter.structure({"callStatus": raw}, CallResult).call_status
    assert isinstance(status, CallStatus) and type(status) is CallStatus
    assert (status.name, status.value, int(status), status == int(str(raw)), status.known) == (
        "UNKNOWN",
        int(str(raw)),
        int(str(raw)),
        True,
        False,
    )
    assert CallStatus.SUCCEEDED.known and CallStatus(6) is CallStatus.SUCCEEDED
    assert list(CallStatus) == [CallStatus.FAILED, CallStatus.SUCCEEDED]  # the pseudo-member is no member


def test_an_undocumented_def_level_is_still_a_def_level() -> None:
    result = LENIENT.structure(
        {"code": "B", "defLevel": "3", "children": [{"code": "B-1", "defLevel": 9}]}, BusinessResult
    )
    assert isinstance(result.def_level, DefLevel) and (result.def_level.name, result.def_level.value) == ("UNKNOWN", 3)
    assert isinstance(result.children[0].def_level, DefLevel) and result.children[0].def_level == 9
    assert not result.def_level.known and DefLevel.CHILD.known


def test_a_pseudo_member_survives_pickle_and_json() -> None:
    status = CallStatus(7)
    assert pickle.loads(pickle.dumps(status)) == status and type(pickle.loads(pickle.dumps(status))) is CallStatus
    assert orjson.dumps({"callStatus": status}) == b'{"callStatus":7}'


@pytest.mark.parametrize("raw", ["x", True, 1.5])
def test_a_value_that_is_no_integer_is_no_call_status(raw: object) -> None:
    with pytest.raises(ValueError):
        CallStatus(raw)


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


TIME_CASES = [
    ("2022-02-10 11:45:51", dt.datetime(2022, 2, 10, 11, 45, 51)),
    ("  2022-02-10   11:45:51 ", dt.datetime(2022, 2, 10, 11, 45, 51)),
    ("2022-02-10 11:45:51.123", dt.datetime(2022, 2, 10, 11, 45, 51, 123000)),
    ("2022-02-10t11:45:51.000001", dt.datetime(2022, 2, 10, 11, 45, 51, 1)),
    ("2022-02-10T11:45:47Z", dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=dt.timezone.utc)),
    ("2022-02-10 11:45:47 +08", dt.datetime(2022, 2, 10, 11, 45, 47, tzinfo=dt.timezone(dt.timedelta(hours=8)))),
]


@pytest.mark.parametrize(("raw", "expected"), TIME_CASES)
def test_parse_time_reads_the_documented_form_and_its_variants(raw: str, expected: dt.datetime) -> None:
    parsed = parse_time(raw)
    assert (parsed, parsed.utcoffset()) == (expected, expected.utcoffset())


@pytest.mark.parametrize(
    "raw",
    ["yesterday", "2022-02-10", "2022-02-10 11:45", "2022-13-10 11:45:51", "2022-02-10 11:45:51+24:00", "1644464743"],
)
def test_parse_time_refuses_what_is_not_a_time(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_time(raw)


@given(
    when=st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 30)),
    zone=st.sampled_from(
        [None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=8)), dt.timezone(-dt.timedelta(hours=3, minutes=30))]
    ),
    separator=st.sampled_from([" ", "T"]),
    z_for_utc=st.booleans(),
)
def test_parse_time_round_trips_every_iso_rendering(
    when: dt.datetime, zone: dt.tzinfo | None, separator: str, z_for_utc: bool
) -> None:
    aware = when.replace(tzinfo=zone)
    text = aware.isoformat(sep=separator)
    if z_for_utc and zone is dt.timezone.utc:
        text = text.replace("+00:00", "Z")
    parsed = parse_time(text)
    assert (parsed, parsed.utcoffset()) == (aware, aware.utcoffset())


def test_the_fast_path_and_the_variant_path_agree_on_the_documented_form() -> None:
    text = "2022-02-10 11:45:51"
    assert parse_time(text) == _parse_time_variant(text) == dt.datetime(2022, 2, 10, 11, 45, 51)


@pytest.mark.parametrize("raw", [{"code": "1"}, ["1"], True, 1.5])
def test_text_fields_refuse_containers_and_non_integers_instead_of_their_str(raw: object) -> None:
    for conv in (STRICT, LENIENT):
        with pytest.raises(Exception) as caught:
            conv.structure({"obsCode": raw}, ObsResultCode)
        assert isinstance(caught.value, (TypeError, cattrs.ClassValidationError))


def test_sequences_are_tuples_whatever_the_cattrs_version() -> None:
    for conv in (STRICT, LENIENT):
        parent = conv.structure(BUSINESS_EXAMPLE[0], BusinessResult)
        external = conv.structure({"defId": "1", "obsCodes": ["00602", "00606"]}, ExternalResult)
        assert (type(parent.children), type(external.obs_codes), type(external.obs_code_details)) == (
            tuple,
            tuple,
            tuple,
        )


#: Valid inputs and every tolerated variant, per model: the strict converter the tests use
#: and the production hooks must build the same objects from each.
AGREEMENT_CASES: list[tuple[type, dict]] = [
    *((ObsResultCode, item) for item in OBS_EXAMPLE),
    (ObsResultCode, {"obsCode": 605}),
    *((BusinessResult, item) for item in BUSINESS_EXAMPLE),
    (BusinessResult, {"code": "A", "children": None, "defLevel": "PARENT"}),
    (BusinessResult, {"code": "A", "defLevel": 7, "children": [{"code": "A-1", "defLevel": ""}]}),
    (CallResult, DETAIL_EXAMPLE),
    *((CallResult, {"callEndTime": raw}) for raw, _ in TIME_CASES),
    (CallResult, {"callStatus": 6, "vdnId": "8", "called": 88881955, "recordPath": "", "callBeginTime": ""}),
    (CallResult, {"callStatus": "9", "vdnId": None, "callTimeStr": "2022-02-10 11:45:43"}),
    (ExternalResult, {"defId": 1645244637, "displayResult": "x", "resultCode": "", "obsCodes": ["00602", 606]}),
    (ExternalResult, {"defId": "1", "obsCodes": [{"obsCode": "00602", "obsCodeDesc": "d"}, "00606"]}),
    (ExternalResult, {"defId": "", "obsCodes": None}),
]


@pytest.mark.parametrize(("cls", "raw"), AGREEMENT_CASES)
def test_the_strict_converter_and_the_production_hooks_agree(cls: type, raw: dict) -> None:
    strict, lenient = STRICT.structure(raw, cls), LENIENT.structure(raw, cls)
    # The reprs differ where only the types do (a list for a tuple, an int for an enum member).
    assert (strict, repr(strict), dict(strict.extra)) == (lenient, repr(lenient), dict(lenient.extra))


@pytest.mark.parametrize(
    ("cls", "raw"),
    [
        (CallResult, {"callStatus": "six"}),
        (CallResult, {"callEndTime": "yesterday"}),
        (ObsResultCode, {"obsCodeDesc": "no code"}),
        (BusinessResult, {"code": "A", "children": "A-1"}),
        (ExternalResult, {"defId": "1", "obsCodes": [{"code": "x"}]}),
    ],
)
def test_the_strict_converter_and_the_production_hooks_refuse_the_same(cls: type, raw: dict) -> None:
    for conv in (STRICT, LENIENT):
        with pytest.raises(Exception):  # noqa: B017 - the types differ (cattrs wraps in strict mode)
            conv.structure(raw, cls)


def test_explain_names_the_first_unreadable_field_with_its_position() -> None:
    # (a defLevel of true, once the example here, is kept as sent: a label cannot kill a page)
    item = {"code": "A", "children": [{"code": "A-1"}, {"code": "A-2", "name": True}]}
    assert explain(item, BusinessResult, "data[4]") == Unreadable(
        "data[4].children[1].name", True, "expected text, got a boolean"
    )


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        (1, DefLevel.PARENT),
        ("2", DefLevel.CHILD),
        (7, DefLevel(7)),  # an undocumented level is still a DefLevel (UNKNOWN)
        (None, None),
        ("", None),
        ("PARENT", "PARENT"),
        ("1.5", "1.5"),
        (1.5, 1.5),
        (True, True),
        ({"level": 1}, {"level": 1}),
        (["1"], ["1"]),
    ],
)
def test_a_def_level_is_a_level_when_it_is_a_whole_number_and_kept_as_sent_otherwise(
    raw: object, level: object
) -> None:
    for conv in (STRICT, LENIENT):
        result = conv.structure({"code": "A", "defLevel": raw}, BusinessResult)
        assert (type(result.def_level), result.def_level) == (type(level), level)


# -- the generated page hook against the strict converter ------------------------------------

_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["", "1", "2", "5", "6", "7", " 6", "x", "2022-02-10 11:45:51", "2022-02-10T11:45:51+08:00"]),
)
_KEYS = {cls: sorted({field.name for field in attrs.fields(cls)} - {"extra"}) for cls in _MODEL_CLASSES}


def _json_values(depth: int) -> st.SearchStrategy[object]:
    if depth == 0:
        return _JSON_SCALARS
    return st.one_of(
        _JSON_SCALARS,
        st.lists(_items(BusinessResult, depth - 1), max_size=3),
        st.lists(st.one_of(_JSON_SCALARS, _items(ObsResultCode, depth - 1)), max_size=3),
        st.dictionaries(st.text(max_size=4), _JSON_SCALARS, max_size=2),
    )


def _items(cls: type, depth: int = 2) -> st.SearchStrategy[object]:
    """A JSON item for ``cls``: mostly an object of its own fields (camelCase), with values
    of every JSON type, sometimes missing a field, sometimes not an object at all."""
    keys = [_camel_key(name) for name in _KEYS[cls]]
    objects = st.fixed_dictionaries({}, optional={key: _json_values(depth) for key in keys})
    if cls in (ObsResultCode, BusinessResult):  # give the required field a fair chance to be valid
        required = "obsCode" if cls is ObsResultCode else "code"
        objects = st.builds(lambda item, code: {**item, required: code}, objects, st.text(max_size=6)) | objects
    return st.one_of(objects, objects, _JSON_SCALARS, st.lists(_JSON_SCALARS, max_size=2))


def _camel_key(name: str) -> str:
    head, *rest = name.split("_")
    return "obsCodes" if name == "obs_code_details" else head + "".join(part.title() for part in rest)


@pytest.mark.parametrize("cls", _MODEL_CLASSES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_the_page_hook_and_the_strict_converter_build_or_refuse_the_same(cls: type, data: st.DataObject) -> None:
    """The one generated function that builds a whole page, and cattrs' strict list hook
    over the strict item hook: the same models from every page, or both refuse it."""
    page = data.draw(st.lists(_items(cls), max_size=4))
    try:
        strict = STRICT.structure(page, list[cls])
    except Exception:
        with pytest.raises(Exception):  # noqa: B017
            structure_items(page, cls)
        return
    built = structure_items(page, cls)
    assert [(m, repr(m)) for m in built] == [(m, repr(m)) for m in strict]
    assert all(dict(m.extra) == {} for m in built)
