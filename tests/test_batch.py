"""Batch writeback: every record accounted for once, streamed input, journal resume."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from isales_async import (
    AuthenticationError,
    BatchAbortedError,
    BatchControl,
    BusinessError,
    ConnectError,
    DuplicateRecordError,
    ISalesClient,
    ISalesError,
    Journal,
    NotFoundError,
    OutcomeKind,
    OutcomeUnknownError,
    Progress,
    RequestSent,
    Status,
    TLSError,
    UnexpectedError,
    ValidationError,
    Writeback,
)
from isales_async.batch._rerun import SKIP_SUCCEEDED, SKIP_UNKNOWN
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, Chaos, FakeClock, FakeISales, Fault

from .conftest import MakeClient

WB = "callBusiResult"


def good(n: int, start: int = 1) -> list[Writeback]:
    return [
        Writeback(data_id=i, busi_result=f"B{i % 12 + 1:02d}", sub_status=f"B{i % 12 + 1:02d}-{i % 3 + 1}")
        for i in range(start, start + n)
    ]


def assert_each_once(records: list[Writeback], report) -> None:  # type: ignore[no-untyped-def]
    reported = [o.record for o in [*report.succeeded, *report.failed, *report.unknown, *report.not_sent]]
    assert Counter(reported) == Counter(records)
    assert report.total == len(records)


def assert_server_agrees(server: FakeISales, report) -> None:  # type: ignore[no-untyped-def]
    applied = server.applied_counts()
    assert all(n == 1 for n in applied.values()), "a record was applied twice"
    succeeded = {o.key for o in report.succeeded}
    unknown = {o.key for o in report.unknown}
    assert succeeded <= set(applied)
    assert set(applied) - succeeded <= unknown
    failed_alone = {o.key for o in report.failed} - succeeded  # a duplicate fails beside its applied twin
    assert not failed_alone & (set(applied) - unknown)


async def test_every_outcome_error_is_typed_even_for_a_bug_in_preparing_a_record(
    client: ISalesClient, server: FakeISales, monkeypatch: pytest.MonkeyPatch
) -> None:
    import isales_async.batch._engine as batch_module

    real_prepare = batch_module.prepare

    def prepare(record: Writeback) -> object:
        if record.data_id == 2:
            raise KeyError("a bug while preparing")
        return real_prepare(record)

    monkeypatch.setattr(batch_module, "prepare", prepare)
    records = [*good(3), Writeback(data_id=4, busi_result="")]
    report = await client.business_results.write_back_many(records, concurrency=1)
    assert sorted(o.data_id for o in report.succeeded) == [1, 3]
    errors = {o.data_id: o.error for o in report.failed}
    assert isinstance(errors[2], UnexpectedError) and isinstance(errors[2].__cause__, KeyError)
    assert isinstance(errors[4], ValidationError)  # one of ours is kept as it is, not wrapped
    assert all(isinstance(o.error, ISalesError) for o in [*report.failed, *report.unknown, *report.not_sent] if o.error)
    assert sorted(sent_keys(server)) == ["1", "3"]


async def test_bad_records_fail_alone_and_the_batch_goes_on(client: ISalesClient, server: FakeISales) -> None:
    records = [
        *good(20),
        Writeback(data_id=99_000_000, busi_result="B01"),  # 0200033
        Writeback(data_id=21, busi_result="B01", sub_status="B02-1"),  # 0200034
        Writeback(data_id=22, busi_result=""),  # invalid
        Writeback(data_id="x1", busi_result="B01"),  # invalid dataId
        Writeback(data_id=5, busi_result="B06"),  # duplicate of record 5
    ]
    report = await client.business_results.write_back_many(records, concurrency=4)
    assert len(report.succeeded) == 20
    errors = {o.data_id: o.error for o in report.failed}
    assert isinstance(errors[99_000_000], NotFoundError) and errors[99_000_000].code == "0200033"
    assert isinstance(errors[21], BusinessError) and errors[21].code == "0200034"
    assert isinstance(errors[22], ValidationError) and errors[22].field == "busi_result"
    assert isinstance(errors["x1"], ValidationError) and errors["x1"].field == "data_id"
    assert isinstance(errors[5], DuplicateRecordError) and "earlier in this batch" in str(errors[5])
    assert server.applied_counts()["5"] == 1
    assert_each_once(records, report)
    assert_server_agrees(server, report)


FAULTS = [
    Fault.status_code(503),
    Fault.status_code(429, retry_after="0"),
    Fault.status_code(500),
    Fault.status_code(502),
    Fault.reset(after=False),
    Fault.reset(after=True),
    Fault.raw_body(b"<html>maintenance</html>", content_type="text/html"),
    Fault.raw_body(b'{"resultCode": '),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_record_accounted_for_once_under_random_faults(
    client: ISalesClient, server: FakeISales, seed: int
) -> None:
    server.chaos = Chaos(rate=0.3, faults=FAULTS, rng=random.Random(seed))
    records = [*good(300), Writeback(data_id=99_000_001, busi_result="B01"), *good(5, start=1)]
    report = await client.business_results.write_back_many(records, concurrency=12)
    assert_each_once(records, report)
    assert_server_agrees(server, report)
    assert report.unknown, "the chaos should have produced some unknown outcomes"
    assert all(isinstance(o.error, OutcomeUnknownError) for o in report.unknown)
    sends = Counter(r.path.rsplit("/", 1)[1] for r in server.requests_to(WB))
    for outcome in report.unknown:
        assert sends[outcome.key] >= 1
    assert len(report.succeeded) == len(set(server.applied_counts()) - {o.key for o in report.unknown})


async def test_input_is_streamed_with_bounded_read_ahead(client: ISalesClient, server: FakeISales) -> None:
    produced = 0
    read_ahead: list[int] = []

    async def records() -> AsyncIterator[Writeback]:
        nonlocal produced
        for record in good(2000):
            produced += 1
            yield record

    server.on_request.append(lambda _: read_ahead.append(produced - len(server.requests)))
    report = await client.business_results.write_back_many(records(), concurrency=8)
    assert len(report.succeeded) == 2000
    assert max(read_ahead) <= 8
    assert read_ahead[0] <= 8  # the input was not drained before the first send


async def test_progress_reports_counts(client: ISalesClient, server: FakeISales) -> None:
    seen: list[Progress] = []
    server.inject(Fault.status_code(500, endpoint=WB))
    report = await client.business_results.write_back_many([*good(10), Writeback(1, "")], on_progress=seen.append)
    final = seen[-1]
    assert (final.succeeded + final.failed + final.unknown, final.done) == (11, 11)
    assert (final.unknown, final.failed) == (len(report.unknown), len(report.failed)) == (1, 1)
    assert [p.done for p in seen] == list(range(1, 12))


async def test_fail_fast_stops_taking_records(client: ISalesClient, server: FakeISales) -> None:
    records = [Writeback(1, ""), *good(50, start=2)]
    report = await client.business_results.write_back_many(records, concurrency=1, fail_fast=True)
    assert report.stopped_early
    assert (len(report.failed), len(report.succeeded)) == (1, 0)
    assert server.requests == []


async def test_journal_resume_after_an_interrupted_run(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "run.journal"
    records = good(400)
    server.latency = 0.001
    with anyio.CancelScope() as scope:

        def interrupt(progress: Progress) -> None:
            if progress.done >= 150:
                scope.cancel()

        await client.business_results.write_back_many(records, concurrency=10, journal=path, on_progress=interrupt)
    assert 150 <= len(server.applied_counts()) < 400

    report = await client.business_results.write_back_many(records, concurrency=10, journal=path)
    applied = server.applied_counts()
    assert all(n == 1 for n in applied.values()), "a record was applied twice"
    assert report.total == 400
    assert report.skipped["succeeded in an earlier run"] >= 150
    with Journal(path) as journal:
        in_doubt = {entry.key for entry in journal.entries(Status.SENDING, Status.UNKNOWN)}
    assert report.skipped.get("outcome unknown from an earlier run (not resent)", 0) == len(in_doubt) <= 10
    assert {str(r.data_id) for r in records} - set(applied) <= in_doubt  # only the in-doubt may be missing


async def test_journal_keeps_unknown_unsent_until_asked(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "unknown.journal"
    server.inject(Fault.reset(after=False, endpoint=WB))
    first = await client.business_results.write_back_many(good(3), concurrency=1, journal=path)
    assert [o.data_id for o in first.unknown] == [1]

    second = await client.business_results.write_back_many(good(3), journal=path)
    assert second.skipped == {"outcome unknown from an earlier run (not resent)": 1, "succeeded in an earlier run": 2}
    assert len(server.requests_to(WB)) == 3

    third = await client.business_results.write_back_many(good(3), journal=path, resend_unknown=True)
    assert [o.data_id for o in third.succeeded] == [1]
    assert server.applied_counts() == {"1": 1, "2": 1, "3": 1}


async def test_journal_resends_what_was_provably_not_applied(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "retry.journal"
    server.inject(Fault.status_code(503, endpoint=WB, times=4))  # every attempt of the first record
    first = await client.business_results.write_back_many(good(2), concurrency=1, journal=path)
    assert [o.data_id for o in first.failed] == [1]
    second = await client.business_results.write_back_many(good(2), journal=path)
    assert [o.data_id for o in second.succeeded] == [1]
    assert second.skipped == {"succeeded in an earlier run": 1}


async def test_succeeded_outcomes_are_read_from_the_journal(client: ISalesClient, tmp_path: Path) -> None:
    report = await client.business_results.write_back_many(good(30), journal=tmp_path / "j")
    assert len(report.succeeded) == 30
    assert sorted(o.data_id for o in report.succeeded) == list(range(1, 31))
    assert report.succeeded[0].record is not None and report.succeeded[0].kind is OutcomeKind.SUCCEEDED


def test_writeback_from_json() -> None:
    record = Writeback.from_json({"dataId": "7", "busiResult": "B01", "subStatus": "", "workNo": "2033"})
    assert record == Writeback("7", "B01", None, None, "2033")
    with pytest.raises(ValidationError, match="busiresult"):
        Writeback.from_json({"dataId": "7", "busiresult": "B01"})
    with pytest.raises(ValidationError, match="dataId"):
        Writeback.from_json({"busiResult": "B01"})


def test_journal_file_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        first_run = journal.begin_run()
        journal.mark("1", Status.SENDING, {"dataId": "1"}, "fp")
    with Journal(path) as again:
        assert again.lookup("1") == (Status.SENDING, first_run, "fp")
        assert again.begin_run() == first_run + 1


# -- issue 12, point 2: one bad record fails alone, whatever is wrong with it ---------------------


def sent_keys(server: FakeISales) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in server.requests_to(WB)]


async def test_records_that_cannot_even_be_encoded_fail_alone_before_sending(
    client: ISalesClient, server: FakeISales
) -> None:
    bad: list[object] = [
        Writeback(6, "B01", busi_result_desc="\ud800"),  # a lone surrogate: not encodable as UTF-8
        Writeback(7, "B01", work_no="2033\udfff"),
        Writeback("²", "B01"),  # isdigit() is true, int() fails
        Writeback(8, 5),  # type: ignore[arg-type]
        Writeback(9, "B01", work_no=2033),  # type: ignore[arg-type]
        Writeback(None, "B01"),  # type: ignore[arg-type]
        {"dataId": 10, "busiResult": "B01"},  # not a Writeback at all
    ]
    records = [*good(5), *bad, *good(3, start=11)]
    report = await client.business_results.write_back_many(records, concurrency=3)  # type: ignore[arg-type]
    assert sorted(o.data_id for o in report.succeeded) == [1, 2, 3, 4, 5, 11, 12, 13]
    fields = {repr(o.data_id): o.error.field for o in report.failed if isinstance(o.error, ValidationError)}
    assert fields == {
        "6": "busi_result_desc",
        "7": "work_no",
        "'²'": "data_id",
        "8": "busi_result",
        "9": "work_no",
        "None": "data_id",
        "''": "record",
    }
    assert len(report.failed) == 7 and report.total == len(records)
    assert sorted(sent_keys(server), key=int) == ["1", "2", "3", "4", "5", "11", "12", "13"]


async def test_an_unexpected_error_in_one_record_fails_that_record_alone(
    client: ISalesClient, server: FakeISales, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug anywhere in one record's processing: before its request leaves, that record
    failed (and was not sent); after, its outcome is unknown (and is never resent)."""
    import isales_async._session as session_module

    real_authorization, real_decipher = session_module.authorization, session_module.decipher

    def authorization(prefix, key, canonical):  # type: ignore[no-untyped-def]
        if canonical.split(b"\n")[1].endswith(b"/3"):  # the canonical request's path line
            raise RuntimeError("a bug before sending")
        return real_authorization(prefix, key, canonical)

    def decipher(endpoint, status, headers, body, now):  # type: ignore[no-untyped-def]
        if server.requests[-1].path.endswith("/4"):
            raise KeyError("a bug after sending")
        return real_decipher(endpoint, status, headers, body, now)

    monkeypatch.setattr(session_module, "authorization", authorization)
    monkeypatch.setattr(session_module, "decipher", decipher)
    path = tmp_path / "bugs.journal"
    report = await client.business_results.write_back_many(good(6), concurrency=1, journal=path)
    assert sorted(o.data_id for o in report.succeeded) == [1, 2, 5, 6]
    assert [(o.data_id, type(o.error)) for o in report.failed] == [(3, UnexpectedError)]
    assert isinstance(report.failed[0].error.__cause__, RuntimeError)
    assert str(report.failed[0].error) == "an unexpected RuntimeError before sending: a bug before sending; not sent"
    assert [o.data_id for o in report.unknown] == [4]
    assert isinstance(report.unknown[0].error, OutcomeUnknownError)
    assert isinstance(report.unknown[0].error.__cause__, KeyError)
    assert sorted(sent_keys(server)) == ["1", "2", "4", "5", "6"]
    with Journal(path, readonly=True) as journal:
        states = {e.key: e.status for e in journal.entries()}
    assert states == {
        "1": Status.SUCCEEDED,
        "2": Status.SUCCEEDED,
        "3": Status.NOT_SENT,
        "4": Status.UNKNOWN,
        "5": Status.SUCCEEDED,
        "6": Status.SUCCEEDED,
    }

    monkeypatch.undo()
    again = await client.business_results.write_back_many(good(6), journal=path)
    assert [o.data_id for o in again.succeeded] == [3]  # never sent, so sent now
    assert again.skipped == {SKIP_SUCCEEDED: 4, SKIP_UNKNOWN: 1}  # 4 is in doubt: not resent
    assert server.applied_counts() == {str(i): 1 for i in range(1, 7)}


async def test_a_broken_progress_callback_does_not_break_the_batch(client: ISalesClient, server: FakeISales) -> None:
    def on_progress(progress: Progress) -> None:
        raise ValueError("the progress display broke")

    report = await client.business_results.write_back_many(good(20), on_progress=on_progress)
    assert len(report.succeeded) == 20 and server.applied_counts() == {str(i): 1 for i in range(1, 21)}


async def test_an_input_that_breaks_stops_the_batch_with_its_report(client: ISalesClient, server: FakeISales) -> None:
    def records() -> Iterator[Writeback]:
        yield from good(5)
        raise OSError("the network share went away")

    with pytest.raises(BatchAbortedError) as info:
        await client.business_results.write_back_many(records(), concurrency=2)
    assert isinstance(info.value.cause, OSError) and "reading the records failed" in info.value.reason
    assert sorted(o.data_id for o in info.value.report.succeeded) == [1, 2, 3, 4, 5]
    assert info.value.report.total == 5


# -- point 3: one canonical dataId -----------------------------------------------------------------


async def test_one_data_id_in_any_spelling_is_sent_once(client: ISalesClient, server: FakeISales) -> None:
    records = [
        Writeback(1, "B01"),
        Writeback("01", "B02"),
        Writeback("0001", "B03"),
        Writeback("\uff11", "B04"),  # fullwidth 1: refused, though int() would read it as 1
        Writeback(" 1", "B05"),
    ]
    report = await client.business_results.write_back_many(records, concurrency=4)
    assert server.applied_counts() == {"1": 1}
    assert sent_keys(server) == ["1"]
    (winner,) = report.succeeded
    duplicates = [o for o in report.failed if isinstance(o.error, DuplicateRecordError)]
    refused = [o for o in report.failed if not isinstance(o.error, DuplicateRecordError)]
    assert sorted([winner.data_id, *(o.data_id for o in duplicates)], key=str) == ["0001", "01", 1]
    assert {o.key for o in [winner, *duplicates]} == {"1"}
    assert all(isinstance(o.error, DuplicateRecordError) and o.error.field == "data_id" for o in duplicates)
    assert sorted(o.data_id for o in refused) == [" 1", "\uff11"]
    assert all(isinstance(o.error, ValidationError) and o.error.field == "data_id" for o in refused)
    assert all(o.key == "" for o in refused)


async def test_outcomes_report_the_data_id_as_given(client: ISalesClient, server: FakeISales, tmp_path: Path) -> None:
    records = [Writeback(7, "B01"), Writeback("8", "B01"), Writeback("0009", "B01"), Writeback(99_000_000, "B01")]
    for journal in (None, tmp_path / "types.journal"):
        server.applied.clear()
        report = await client.business_results.write_back_many(records, journal=journal)
        assert sorted((o.data_id, o.key) for o in report.succeeded if isinstance(o.data_id, int)) == [(7, "7")]
        assert sorted((o.data_id, o.key) for o in report.succeeded if isinstance(o.data_id, str)) == [
            ("0009", "9"),
            ("8", "8"),
        ]
        assert [(o.data_id, o.key) for o in report.failed] == [(99_000_000, "99000000")]


# -- point 6: a fatal error stops the batch ----------------------------------------------------------


async def test_a_wrong_sk_stops_the_batch_and_leaves_the_rest_pending(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "auth.journal"
    async with make_client(sk="not-the-secret") as client:
        with pytest.raises(BatchAbortedError) as info:
            await client.business_results.write_back_many(good(200), concurrency=4, journal=path)
    error = info.value
    assert isinstance(error.cause, AuthenticationError) and error.__cause__ is error.cause
    assert "refused the credentials" in error.reason and "not-the-secret" not in str(error)
    report = error.report
    assert (list(report.succeeded), report.failed, report.unknown) == ([], [], [])
    # Only what was in flight when the first 401 came back was sent; nothing new after it.
    assert 1 <= server.rejected_auth <= len(report.not_sent) == report.total <= 4
    assert report.stopped_early and report.stop_reason == error.reason
    with Journal(path, readonly=True) as journal:
        counts = journal.counts()
    assert counts[Status.QUEUED] + counts[Status.NOT_SENT] == report.total  # pending, not failed
    assert counts[Status.FAILED] == counts[Status.SUCCEEDED] == 0

    async with make_client() as client:
        again = await client.business_results.write_back_many(good(200), concurrency=4, journal=path)
    assert len(again.succeeded) == 200 and again.skipped == {}
    assert server.applied_counts() == {str(i): 1 for i in range(1, 201)}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_server_stops_the_batch_once_the_retries_are_spent(
    make_client: MakeClient, tmp_path: Path
) -> None:
    attempts: list[RequestSent] = []
    hooks = [lambda e: isinstance(e, RequestSent) and attempts.append(e)]
    async with make_client(base_url=f"http://127.0.0.1:{closed_port()}", hooks=hooks) as client:
        with pytest.raises(BatchAbortedError) as info:
            await client.business_results.write_back_many(good(3000), concurrency=4, journal=tmp_path / "down")
    error = info.value
    assert isinstance(error.cause, ConnectError) and "unreachable" in error.reason
    report = error.report
    assert 1 <= len(report.not_sent) == report.total <= 4
    assert (list(report.succeeded), report.failed, report.unknown) == ([], [], [])
    assert 4 <= len(attempts) <= 4 * 4  # the records in flight, each up to its 4 attempts: not 3,000


async def test_a_tls_failure_stops_the_batch(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)
    server = FakeISales()
    url = await server.start(ssl_context=server_context)
    try:
        async with ISalesClient(url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, clock=FakeClock()) as client:
            with pytest.raises(BatchAbortedError) as info:
                await client.business_results.write_back_many(good(500), concurrency=4)
        assert isinstance(info.value.cause, TLSError) and "TLS failed" in info.value.reason
        assert 1 <= len(info.value.report.not_sent) == info.value.report.total <= 4
        assert server.requests == []
    finally:
        await server.close()


# -- point 7: stopping a batch from outside ----------------------------------------------------------


async def hang_first(server: FakeISales, count: int) -> asyncio.Event:
    """Hold the first ``count`` writebacks at the server; the event is set once all have arrived."""
    arrived = asyncio.Event()
    server.inject(Fault.hang(endpoint=WB, times=count))
    server.on_request.append(lambda _: len(server.requests_to(WB)) >= count and arrived.set())
    return arrived


async def test_stop_lets_the_requests_on_the_wire_finish_and_sends_nothing_new(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "stop.journal"
    arrived = await hang_first(server, 3)
    control = BatchControl()
    async with make_client(max_concurrency=3) as client:  # 5 workers, 3 slots: 2 records wait unsent
        batch = asyncio.ensure_future(
            client.business_results.write_back_many(good(100), concurrency=5, journal=path, control=control)
        )
        await arrived.wait()
        control.stop()
        server.release()
        report = await batch
    assert report.stopped_early and report.stop_reason is not None and "stop" in report.stop_reason
    assert sorted(o.data_id for o in report.succeeded) == [1, 2, 3]  # the three on the wire finished
    # 4 and 5 were taken and waited for a slot; 6 was admitted with their wave (its intent
    # recorded, not yet taken): all three never sent, and reported so.
    assert sorted(o.data_id for o in report.not_sent) == [4, 5, 6] and report.total == 6
    assert server.applied_counts() == {"1": 1, "2": 1, "3": 1}
    with Journal(path, readonly=True) as journal:
        counts = journal.counts()
    assert (counts[Status.SUCCEEDED], counts[Status.QUEUED], sum(counts.values())) == (3, 3, 6)

    async with make_client() as client:
        rest = await client.business_results.write_back_many(good(100), journal=path)
    assert len(rest.succeeded) == 97 and rest.skipped == {SKIP_SUCCEEDED: 3}
    assert server.applied_counts() == {str(i): 1 for i in range(1, 101)}


async def test_abandon_stops_waiting_and_records_what_was_on_the_wire_as_in_doubt(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "abandon.journal"
    arrived = await hang_first(server, 3)
    control = BatchControl()
    async with make_client(max_concurrency=3) as client:
        batch = asyncio.ensure_future(
            client.business_results.write_back_many(good(100), concurrency=5, journal=path, control=control)
        )
        await arrived.wait()
        control.stop()
        control.abandon()
        report = await batch  # returns while the server still holds the three requests
        assert client._session.in_flight == 0
    assert sorted(o.data_id for o in report.unknown) == [1, 2, 3]
    assert all(isinstance(o.error, OutcomeUnknownError) for o in report.unknown)
    # 4 and 5 waited for a slot, 6 was admitted with their wave: never sent, put back as queued.
    assert (len(report.not_sent), len(report.succeeded), report.total) == (3, 0, 6)
    with Journal(path, readonly=True) as journal:
        assert {e.key: e.status for e in journal.entries(Status.UNKNOWN)} == dict.fromkeys("123", Status.UNKNOWN)
        assert journal.count(Status.QUEUED) == 3

    server.release()
    async with make_client() as client:
        rest = await client.business_results.write_back_many(good(100), journal=path)
    assert rest.skipped == {SKIP_UNKNOWN: 3} and len(rest.succeeded) == 97
    assert sent_keys(server).count("1") == 1  # in doubt: never sent a second time


async def test_a_control_stopped_before_the_batch_takes_nothing(client: ISalesClient, server: FakeISales) -> None:
    control = BatchControl()
    control.stop()
    report = await client.business_results.write_back_many(good(10), control=control)
    assert report.total == 0 and report.stopped_early and server.requests == []


async def test_retry_unknown_still_works_as_a_deprecated_alias(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "alias.journal"
    server.inject(Fault.reset(after=False, endpoint=WB))
    await client.business_results.write_back_many(good(1), journal=path)
    with pytest.warns(DeprecationWarning, match="resend_unknown"):
        report = await client.business_results.write_back_many(good(1), journal=path, retry_unknown=True)
    assert [o.data_id for o in report.succeeded] == [1]
