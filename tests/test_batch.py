"""Batch writeback: every record accounted for once, streamed input, journal resume."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from isales_async import (
    BusinessError,
    ISalesClient,
    Journal,
    NotFoundError,
    OutcomeKind,
    OutcomeUnknownError,
    Progress,
    ValidationError,
    Writeback,
)
from isales_async._journal import Status
from isales_async.testing import Chaos, FakeISales, Fault

WB = "callBusiResult"


def good(n: int, start: int = 1) -> list[Writeback]:
    return [
        Writeback(data_id=i, busi_result=f"B{i % 12 + 1:02d}", sub_status=f"B{i % 12 + 1:02d}-{i % 3 + 1}")
        for i in range(start, start + n)
    ]


def assert_each_once(records: list[Writeback], report) -> None:  # type: ignore[no-untyped-def]
    reported = [o.record for o in [*report.succeeded, *report.failed, *report.unknown]]
    assert Counter(reported) == Counter(records)
    assert report.total == len(records)


def assert_server_agrees(server: FakeISales, report) -> None:  # type: ignore[no-untyped-def]
    applied = server.applied_counts()
    assert all(n == 1 for n in applied.values()), "a record was applied twice"
    succeeded = {o.data_id for o in report.succeeded}
    unknown = {o.data_id for o in report.unknown}
    assert succeeded <= set(applied)
    assert set(applied) - succeeded <= unknown
    failed_alone = {o.data_id for o in report.failed} - succeeded  # a duplicate fails beside its applied twin
    assert not failed_alone & (set(applied) - unknown)


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
    assert isinstance(errors["99000000"], NotFoundError) and errors["99000000"].code == "0200033"
    assert isinstance(errors["21"], BusinessError) and errors["21"].code == "0200034"
    assert isinstance(errors["22"], ValidationError) and errors["22"].field == "busi_result"
    assert isinstance(errors["x1"], ValidationError) and errors["x1"].field == "data_id"
    assert isinstance(errors["5"], ValidationError) and "earlier in this batch" in str(errors["5"])
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
        assert sends[outcome.data_id] >= 1
    assert len(report.succeeded) == len(set(server.applied_counts()) - {o.data_id for o in report.unknown})


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
        in_doubt = {data_id for data_id, *_ in journal.rows(Status.SENDING, Status.UNKNOWN)}
    assert report.skipped.get("outcome unknown from an earlier run (not resent)", 0) == len(in_doubt) <= 10
    assert {str(r.data_id) for r in records} - set(applied) <= in_doubt  # only the in-doubt may be missing


async def test_journal_keeps_unknown_unsent_until_asked(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "unknown.journal"
    server.inject(Fault.reset(after=False, endpoint=WB))
    first = await client.business_results.write_back_many(good(3), concurrency=1, journal=path)
    assert [o.data_id for o in first.unknown] == ["1"]

    second = await client.business_results.write_back_many(good(3), journal=path)
    assert second.skipped == {"outcome unknown from an earlier run (not resent)": 1, "succeeded in an earlier run": 2}
    assert len(server.requests_to(WB)) == 3

    third = await client.business_results.write_back_many(good(3), journal=path, retry_unknown=True)
    assert [o.data_id for o in third.succeeded] == ["1"]
    assert server.applied_counts() == {"1": 1, "2": 1, "3": 1}


async def test_journal_resends_what_was_provably_not_applied(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "retry.journal"
    server.inject(Fault.status_code(503, endpoint=WB, times=4))  # every attempt of the first record
    first = await client.business_results.write_back_many(good(2), concurrency=1, journal=path)
    assert [o.data_id for o in first.failed] == ["1"]
    second = await client.business_results.write_back_many(good(2), journal=path)
    assert [o.data_id for o in second.succeeded] == ["1"]
    assert second.skipped == {"succeeded in an earlier run": 1}


async def test_succeeded_outcomes_are_read_from_the_journal(client: ISalesClient, tmp_path: Path) -> None:
    report = await client.business_results.write_back_many(good(30), journal=tmp_path / "j")
    assert len(report.succeeded) == 30
    assert sorted(int(o.data_id) for o in report.succeeded) == list(range(1, 31))
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
        journal.mark("1", Status.SENDING, {"dataId": "1"})
        first_run = journal.run
    with Journal(path) as again:
        assert again.lookup("1") == (Status.SENDING, first_run)
        assert again.run == first_run + 1
