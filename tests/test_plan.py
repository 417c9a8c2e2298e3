"""Issue 19, the dry run in the library: ``plan_write_back`` decides every record as a run
would, through the same code, and sends and writes nothing."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from isales_async import ISalesClient, Journal, OutcomeKind, Status, Writeback, WritebackPlan
from isales_async.batch._definitions import NO_SUB_STATUSES, NOT_ITS_SUB_STATUS, UNDEFINED_RESULT
from isales_async.batch._report import refusal_reason
from isales_async.batch._rerun import SKIP_FAILED, SKIP_SUCCEEDED, SKIP_UNKNOWN
from isales_async.testing import FakeISales, Fault

WB = "callBusiResult"


def good(i: int) -> Writeback:
    parent = f"B{i % 12 + 1:02d}"
    return Writeback(i, parent, sub_status=f"{parent}-{i % 3 + 1}")


def digests(path: Path) -> list[str]:
    """The journal, its write-ahead log and its lock file, as bytes on disk (a missing log has
    no frames, like an empty one: a reader of a journal in WAL mode may create it empty)."""
    return [
        hashlib.sha256(p.read_bytes() if p.exists() else b"").hexdigest()
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + ".lock"))
    ]


async def earlier_runs(client: ISalesClient, server: FakeISales, path: Path) -> None:
    """A journal as earlier nights left it: 1-10 applied, 11 refused by the server (0200034),
    12 in doubt (the connection reset after sending), 13 not applied (503 every attempt)."""
    batch = client.business_results.write_back_many
    await batch([good(i) for i in range(1, 11)], journal=path)
    await batch([Writeback(11, "B01", sub_status="B02-1")], journal=path)
    server.inject(Fault.reset(after=True, endpoint=WB))
    await batch([good(12)], journal=path)
    server.inject(Fault.status_code(503, endpoint=WB, times=4))
    await batch([good(13)], journal=path)
    with Journal(path, readonly=True) as journal:
        states = {e.key: e.status for e in journal.entries()}
    assert [states[k] for k in ("1", "11", "12", "13")] == [
        Status.SUCCEEDED,
        Status.FAILED,
        Status.UNKNOWN,
        Status.NOT_SENT,
    ]


def tonight() -> list[Writeback]:
    """Every kind of record a run meets: skipped, resent, sent, refused for each reason."""
    return [
        *(good(i) for i in range(1, 6)),  # applied, unchanged: skipped
        Writeback(6, "B02", sub_status="B02-1"),  # applied, changed since: resent
        Writeback(7, "B13"),  # applied before; its new mapping is undefined: refused
        Writeback(11, "B01", sub_status="B02-1"),  # refused by the server before, unchanged: skipped
        good(12),  # in doubt: skipped
        good(13),  # never applied: resent
        *(good(i) for i in range(20, 30)),  # new: sent
        Writeback(30, "B12x"),  # a typo
        Writeback(31, "B01", sub_status="B02-1"),  # another parent's sub-status
        Writeback(32, "B14", sub_status="B14-1"),  # a code without sub-statuses, given one
        Writeback(33, ""),  # invalid
        Writeback("x34", "B01"),  # invalid dataId
        Writeback("0020", "B01"),  # dataId 20 again
        Writeback(99_000_000, "B01"),  # sent; the server then says it does not exist
    ]


async def test_the_plan_is_what_the_run_then_does_and_it_sends_and_writes_nothing(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    server.business_results.append({"code": "B14", "name": "no sub-statuses", "defLevel": "1", "children": []})
    path = tmp_path / "night.journal"
    await earlier_runs(client, server, path)
    requests_before, disk_before = len(server.requests_to(WB)), digests(path)
    with Journal(path, readonly=True) as journal:
        runs_before = journal.runs()

    plan = await client.business_results.plan_write_back(tonight(), journal=path, check_definitions=True)

    assert isinstance(plan, WritebackPlan)
    assert len(server.requests_to(WB)) == requests_before and digests(path) == disk_before
    with Journal(path, readonly=True) as journal:
        assert journal.runs() == runs_before
    assert plan.skipped == {SKIP_SUCCEEDED: 5, SKIP_FAILED: 1, SKIP_UNKNOWN: 1}
    assert plan.refused_by_reason == {
        UNDEFINED_RESULT: 2,
        NOT_ITS_SUB_STATUS: 1,
        NO_SUB_STATUSES: 1,
        "invalid busi_result": 1,
        "invalid data_id": 1,
        "duplicate dataId": 1,
    }
    assert (plan.would_send, plan.would_resend, plan.total) == (13, 2, len(tonight()))
    assert all(o.kind is OutcomeKind.FAILED for o in plan.refused)
    assert "would send 13 (2 again)" in plan.summary()

    report = await client.business_results.write_back_many(tonight(), journal=path, check_definitions=True)

    assert report.skipped == plan.skipped
    refused = [o for o in report.failed if refusal_reason(o.error) is not None]
    assert dict(Counter(refusal_reason(o.error) for o in refused)) == plan.refused_by_reason
    assert sorted(map(repr, (o.data_id for o in refused))) == sorted(map(repr, (o.data_id for o in plan.refused)))
    sent = Counter(r.path.rsplit("/", 1)[1] for r in server.requests_to(WB)[requests_before:])
    assert len(sent) == sum(sent.values()) == plan.would_send
    assert sorted(sent, key=int) == ["6", "13", *(str(i) for i in range(20, 30)), "99000000"]
    assert len(report.succeeded) + len(report.unknown) + len(report.failed) - len(refused) == plan.would_send


async def test_a_plan_neither_waits_for_a_run_holding_the_journal_nor_creates_one(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "held.journal"
    await client.business_results.write_back_many([good(1), good(2)], journal=path)
    with Journal(path) as running:
        running.begin_run()  # another run holds the lock meanwhile
        plan = await client.business_results.plan_write_back([good(1), good(3)], journal=path)
    assert (plan.would_send, plan.skipped, plan.refused) == (1, {SKIP_SUCCEEDED: 1}, [])

    missing = tmp_path / "none-yet.journal"
    plan = await client.business_results.plan_write_back([good(1), good(1)], journal=missing)
    assert (plan.would_send, plan.would_resend, plan.refused_by_reason) == (1, 0, {"duplicate dataId": 1})
    assert not missing.exists() and len(server.requests_to(WB)) == 2


async def test_without_the_check_the_plan_sends_what_the_tenant_does_not_define(
    client: ISalesClient, server: FakeISales
) -> None:
    records = [Writeback(1, "B13"), good(2)]
    unchecked = await client.business_results.plan_write_back(records)
    checked = await client.business_results.plan_write_back(records, check_definitions=True)
    assert (unchecked.would_send, unchecked.refused) == (2, [])
    assert (checked.would_send, checked.refused_by_reason) == (1, {UNDEFINED_RESULT: 1})
    assert server.requests_to(WB) == [] and len(server.requests_to("queryBusinessResults")) == 1
