"""The pure parts of a batch, tested synchronously: the canonical dataId, the text checks,
the payload fingerprint, the re-run decision table and which errors stop a batch."""

from __future__ import annotations

import pytest

from isales_async import (
    AuthenticationError,
    ConnectError,
    JournalError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    Status,
    TLSError,
    ValidationError,
    Writeback,
)
from isales_async._validation import MAX_DATA_ID, check_data_id, check_text
from isales_async.batch._report import fatal_reason
from isales_async.batch._rerun import SKIP_FAILED, SKIP_SUCCEEDED, SKIP_UNKNOWN, decide
from isales_async.batch._writeback import fingerprint, prepare

from .conftest import ascii_id

# -- the canonical dataId ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (1, "1"),
        ("1", "1"),
        ("01", "1"),
        ("0001", "1"),
        ("1234567890", "1234567890"),
        (MAX_DATA_ID, "9223372036854775807"),
        ("9223372036854775807", "9223372036854775807"),
        ("00009223372036854775807", "9223372036854775807"),
    ],
)
def test_a_data_id_has_one_canonical_form(given: int | str, canonical: str) -> None:
    assert check_data_id(given) == canonical


@pytest.mark.parametrize(
    "given",
    [
        "²",  # isdigit() is true, int() fails
        "\uff11",  # fullwidth 1: int() reads it as 1
        "\u0661",  # Arabic-Indic 1
        "+1",
        "-1",
        " 1",
        "1 ",
        "1_000",
        "",
        "0",
        "000",
        0,
        -5,
        MAX_DATA_ID + 1,
        "9223372036854775808",
        "1" * 5000,  # longer than int() will even parse
        True,
        1.0,
        None,
        b"1",
        ["1"],
    ],
    ids=lambda value: ascii_id(repr(value)),
)
def test_anything_else_is_refused_naming_data_id(given: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_data_id(given)  # type: ignore[arg-type]
    assert info.value.field == "data_id"


def test_the_refusal_says_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="ASCII digits only"):
        check_data_id("²")
    with pytest.raises(ValidationError, match="got bool"):
        check_data_id(True)
    with pytest.raises(ValidationError, match="between 1 and 9223372036854775807, got 0"):
        check_data_id("0000")


# -- text fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\ud800", "B01\udfff", "\udc80x"], ids=ascii_id)
def test_a_lone_surrogate_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationError, match="lone surrogate") as info:
        check_text("busi_result_desc", value)
    assert info.value.field == "busi_result_desc"


def test_text_that_is_valid_unicode_passes_unchanged() -> None:
    assert check_text("busi_result_desc", "客户已同意 ✓ \U0001f600") == "客户已同意 ✓ \U0001f600"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (Writeback(1, "B01", busi_result_desc="\ud800"), "busi_result_desc"),
        (Writeback(1, "\udfffB01"), "busi_result"),
        (Writeback(1, "B01", sub_status="B01-1\ud800"), "sub_status"),
        (Writeback(1, "B01", work_no="\ud83d"), "work_no"),
        (Writeback(1, 5), "busi_result"),  # type: ignore[arg-type]
        (Writeback(1, "B01", work_no=2033), "work_no"),  # type: ignore[arg-type]
        (Writeback(1, "B01", sub_status=b"B01-1"), "sub_status"),  # type: ignore[arg-type]
        (Writeback("²", "B01"), "data_id"),
        (Writeback(1.5, "B01"), "data_id"),  # type: ignore[arg-type]
        ({"dataId": 1, "busiResult": "B01"}, "record"),
    ],
    ids=lambda value: ascii_id(repr(value)),
)
def test_prepare_names_the_bad_field(record: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        prepare(record)
    assert info.value.field == field


# -- the fingerprint -------------------------------------------------------------------------------


def test_the_fingerprint_is_of_the_canonical_id_and_the_exact_body() -> None:
    base = prepare(Writeback(7, "B01", sub_status="B01-1"))
    assert prepare(Writeback("0007", "B01", sub_status="B01-1")).fingerprint == base.fingerprint
    assert base.fingerprint == fingerprint("7", {"busiResult": "B01", "subStatus": "B01-1"})
    # An empty optional field is left out of the body, so it sends the same request.
    assert prepare(Writeback(7, "B01", sub_status="B01-1", busi_result_desc="")).fingerprint == base.fingerprint
    different = [
        Writeback(8, "B01", sub_status="B01-1"),
        Writeback(7, "B02", sub_status="B01-1"),
        Writeback(7, "B01", sub_status="B01-2"),
        Writeback(7, "B01", sub_status="B01-1", work_no="2033"),
        Writeback(7, "B01", sub_status="B01-1", busi_result_desc="called back"),
    ]
    fingerprints = {prepare(r).fingerprint for r in different}
    assert len(fingerprints) == len(different) and base.fingerprint not in fingerprints
    assert len(base.fingerprint) == 32 and int(base.fingerprint, 16) >= 0


def test_the_fingerprint_separates_the_id_from_the_body() -> None:
    assert fingerprint("1", {"busiResult": "2"}) != fingerprint("12", {"busiResult": ""})


# -- the re-run decision table ---------------------------------------------------------------------

SAME, CHANGED = "same", "changed"
SEND = None
# previous state, payload, retry_failed, resend_unknown -> None (send) or the skip reason
TABLE = [
    (None, CHANGED, False, False, SEND),
    (Status.QUEUED, SAME, False, False, SEND),
    (Status.QUEUED, CHANGED, False, False, SEND),
    (Status.NOT_SENT, SAME, False, False, SEND),
    (Status.NOT_SENT, CHANGED, False, False, SEND),
    (Status.SUCCEEDED, SAME, False, False, SKIP_SUCCEEDED),
    (Status.SUCCEEDED, SAME, True, True, SKIP_SUCCEEDED),  # neither flag resends what was applied
    (Status.SUCCEEDED, CHANGED, False, False, SEND),
    (Status.FAILED, SAME, False, False, SKIP_FAILED),
    (Status.FAILED, SAME, True, False, SEND),
    (Status.FAILED, SAME, False, True, SKIP_FAILED),
    (Status.FAILED, CHANGED, False, False, SEND),
    (Status.SENDING, SAME, False, False, SKIP_UNKNOWN),
    (Status.SENDING, CHANGED, False, False, SKIP_UNKNOWN),  # in doubt: even a new payload waits
    (Status.SENDING, SAME, True, False, SKIP_UNKNOWN),
    (Status.SENDING, SAME, False, True, SEND),
    (Status.UNKNOWN, SAME, False, False, SKIP_UNKNOWN),
    (Status.UNKNOWN, CHANGED, True, False, SKIP_UNKNOWN),
    (Status.UNKNOWN, CHANGED, False, True, SEND),
]


@pytest.mark.parametrize(("previous", "payload", "retry_failed", "resend_unknown", "expected"), TABLE)
def test_the_rerun_decision_table(
    previous: Status | None, payload: str, retry_failed: bool, resend_unknown: bool, expected: str | None
) -> None:
    previous_fingerprint = None if previous is None else "f1"
    current = "f1" if payload == SAME else "f2"
    decision = decide(previous, previous_fingerprint, current, retry_failed=retry_failed, resend_unknown=resend_unknown)
    assert decision == expected


def test_the_table_covers_every_state() -> None:
    assert {row[0] for row in TABLE} == {None, *Status}


@pytest.mark.parametrize(("previous", "expected"), [(Status.SUCCEEDED, SKIP_SUCCEEDED), (Status.FAILED, SKIP_FAILED)])
def test_an_unreadable_previous_payload_counts_as_unchanged(previous: Status, expected: str) -> None:
    assert decide(previous, None, "f2") == expected


# -- what stops a batch -----------------------------------------------------------------------------


def _status(cls: type, status: int) -> Exception:
    return cls("x", status=status, endpoint="callBusiResult")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("error", "fatal"),
    [
        (_status(AuthenticationError, 401), "credentials"),
        (TLSError("handshake"), "TLS"),
        (ConnectError("refused"), "unreachable"),
        (JournalError("j.sqlite", "database or disk is full"), "journal"),
        (_status(RateLimitedError, 429), None),
        (_status(ServerError, 503), None),
        (OutcomeUnknownError("reset", endpoint="callBusiResult"), None),
        (NotFoundError(code="0200033", description="", endpoint="callBusiResult", meaning="no data"), None),
        (ValidationError("data_id", "bad"), None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_which_errors_stop_a_batch(error: Exception, fatal: str | None) -> None:
    reason = fatal_reason(error)
    if fatal is None:
        assert reason is None
    else:
        assert reason is not None and fatal in reason and str(error) in reason


# -- a refusal for the tenant's definitions (issue 19 review) ------------------------------------------


@pytest.mark.parametrize(
    ("code", "defined_now", "retry_failed", "expected"),
    [
        ("0200034", True, False, SEND),  # the tenant defines it now: it changed since the refusal
        ("0200001", True, False, SEND),
        ("0200034", False, False, SKIP_FAILED),  # not checked, or still undefined: nothing says it changed
        ("0200001", False, False, SKIP_FAILED),
        ("0200033", True, False, SKIP_FAILED),  # "does not exist" is not about the definitions
        (None, True, False, SKIP_FAILED),
        ("0200034", False, True, SEND),
    ],
)
def test_a_failure_for_the_tenants_definitions_is_resent_once_they_define_the_record(
    code: str | None, defined_now: bool, retry_failed: bool, expected: str | None
) -> None:
    decision = decide(Status.FAILED, "f1", "f1", retry_failed=retry_failed, previous_code=code, defined_now=defined_now)
    assert decision == expected
    assert decide(Status.FAILED, "f1", "f2", previous_code=code, defined_now=defined_now) == SEND  # changed: sent
    assert decide(Status.UNKNOWN, "f1", "f1", previous_code=code, defined_now=True) == SKIP_UNKNOWN
