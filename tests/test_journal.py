"""The journal across runs (issue 12, points 4, 5 and 10): one run at a time, across real
processes; re-runs that send what changed and never what is in doubt; journals of the
previous version migrated; every fault a typed JournalError that stops the batch."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from isales_async import (
    BatchAbortedError,
    BatchControl,
    BatchReport,
    BusinessError,
    DuplicateRecordError,
    ISalesClient,
    Journal,
    JournalError,
    JournalLockedError,
    OutcomeUnknownError,
    Status,
    Writeback,
)
from isales_async.batch._journal import SCHEMA_VERSION
from isales_async.batch._rerun import SKIP_FAILED, SKIP_SUCCEEDED, SKIP_UNKNOWN
from isales_async.batch._writeback import prepare
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales, Fault

from . import legacy_journal_v0
from .conftest import MakeClient
from .server_thread import server_in_thread
from .test_batch import WB, assert_server_agrees, good, sent_keys

# -- point 4: one run per journal at a time ------------------------------------------------------------

HOLDER = """
import sys
from isales_async import Journal

journal = Journal(sys.argv[1])
journal.begin_run()
print("holding", flush=True)
sys.stdin.read()  # hold the run until the test kills this process
"""


async def test_a_second_process_is_refused_at_once_and_a_killed_holder_leaves_no_stale_lock(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "shared.journal"
    holder = subprocess.Popen(  # noqa: ASYNC220 - a real second process; nothing else runs meanwhile
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with pytest.raises(JournalLockedError) as info:
            await client.business_results.write_back_many(good(10), journal=path)
        assert info.value.path == str(path) and str(path) in str(info.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in info.value.holder
        assert info.value.holder in str(info.value)
        assert server.requests == []
    finally:
        holder.kill()  # SIGKILL: the process gets no chance to clean up
        holder.communicate()
    report = await client.business_results.write_back_many(good(10), journal=path)
    assert len(report.succeeded) == 10


async def test_two_batches_on_one_journal_in_one_process_are_refused_too(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "one.journal"
    arrived = asyncio.Event()
    server.inject(Fault.hang(endpoint=WB))
    server.on_request.append(lambda _: arrived.set())
    with Journal(path) as journal:
        first = asyncio.ensure_future(client.business_results.write_back_many(good(3), journal=journal))
        await arrived.wait()
        with pytest.raises(JournalLockedError, match="same Journal object"):
            await client.business_results.write_back_many(good(3), journal=journal)
        with pytest.raises(JournalLockedError, match="pid"):
            await client.business_results.write_back_many(good(3), journal=path)
        server.release()
        assert len((await first).succeeded) == 3
    assert server.applied_counts() == {"1": 1, "2": 1, "3": 1}


async def test_one_journal_object_serves_batches_one_after_another(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    with Journal(tmp_path / "reused.journal") as journal:
        first = await client.business_results.write_back_many(good(5), journal=journal)
        first_run = journal.run
        second = await client.business_results.write_back_many(good(8), journal=journal)
        assert journal.run == first_run + 1 and not journal.running  # type: ignore[operator]
    assert len(first.succeeded) == 5
    assert sorted(o.data_id for o in second.succeeded) == [6, 7, 8]
    assert second.skipped == {SKIP_SUCCEEDED: 5}
    assert server.applied_counts() == {str(i): 1 for i in range(1, 9)}


# -- point 5: re-runs that do the right thing ------------------------------------------------------------


async def test_a_changed_payload_is_sent_and_an_unchanged_one_skipped(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "nightly.journal"
    await client.business_results.write_back_many(good(10), journal=path)
    tonight = good(10)
    tonight[5] = Writeback(6, "B02", sub_status="B02-1")  # the result of record 6 changed since
    tonight[8] = Writeback("0009", tonight[8].busi_result, tonight[8].sub_status)  # the same, spelled otherwise
    report = await client.business_results.write_back_many(tonight, journal=path)
    assert [o.data_id for o in report.succeeded] == [6]
    assert report.skipped == {SKIP_SUCCEEDED: 9}
    assert server.applied_counts()["6"] == 2 and server.applied[-1].body == {"busiResult": "B02", "subStatus": "B02-1"}
    assert sent_keys(server).count("9") == 1


async def test_a_failure_is_sent_again_once_corrected_or_when_asked(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "failures.journal"
    records = good(4)
    records[2] = Writeback(3, "B01", sub_status="B02-1")  # 0200034: the sub-status does not match
    first = await client.business_results.write_back_many(records, journal=path)
    assert [o.data_id for o in first.failed] == [3] and isinstance(first.failed[0].error, BusinessError)

    unchanged = await client.business_results.write_back_many(records, journal=path)
    assert unchanged.skipped == {SKIP_SUCCEEDED: 3, SKIP_FAILED: 1}
    assert sent_keys(server).count("3") == 1

    asked = await client.business_results.write_back_many(records, journal=path, retry_failed=True)
    assert [o.data_id for o in asked.failed] == [3] and sent_keys(server).count("3") == 2

    records[2] = Writeback(3, "B01", sub_status="B01-1")  # corrected
    corrected = await client.business_results.write_back_many(records, journal=path)
    assert [o.data_id for o in corrected.succeeded] == [3] and corrected.skipped == {SKIP_SUCCEEDED: 3}
    assert server.applied_counts() == {"1": 1, "2": 1, "3": 1, "4": 1}


async def test_a_record_in_doubt_is_never_resent_unless_asked_even_when_changed(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "doubt.journal"
    server.inject(Fault.reset(after=True, endpoint=WB))  # applied, then the answer is lost
    first = await client.business_results.write_back_many(good(3), concurrency=1, journal=path)
    assert [o.data_id for o in first.unknown] == [1]

    changed = [Writeback(1, "B05"), *good(2, start=2)]  # record 1 was B02/B02-2
    second = await client.business_results.write_back_many(changed, journal=path)
    assert second.skipped == {SKIP_UNKNOWN: 1, SKIP_SUCCEEDED: 2}
    with Journal(path, readonly=True) as journal:
        (listed,) = journal.entries(Status.UNKNOWN, Status.SENDING)  # always listed
    assert listed.key == "1" and listed.record == {"dataId": 1, "busiResult": "B02", "subStatus": "B02-2"}

    third = await client.business_results.write_back_many(changed, journal=path, resend_unknown=True)
    assert [o.data_id for o in third.succeeded] == [1]
    assert server.applied_counts() == {"1": 2, "2": 1, "3": 1}  # the user asked for the second write


async def test_a_resend_that_never_left_keeps_the_record_in_doubt(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    """Asked to resend a record in doubt, and stopped before it left: it is still in doubt."""
    path = tmp_path / "still.journal"
    server.inject(Fault.reset(after=True, endpoint=WB))
    await client.business_results.write_back_many(good(1), journal=path)
    server.inject(Fault.status_code(503, endpoint=WB, times=4))  # every attempt: provably not applied
    retried = await client.business_results.write_back_many(good(1), journal=path, resend_unknown=True)
    assert len(retried.failed) == 1
    with Journal(path, readonly=True) as journal:
        assert [e.status for e in journal.entries()] == [Status.UNKNOWN]
    again = await client.business_results.write_back_many(good(1), journal=path)
    assert again.skipped == {SKIP_UNKNOWN: 1}


def write_legacy_journal(path: Path) -> None:
    """A journal written by isales-async 0.1.0's own journal code, the way its batch did."""
    rows = [
        ("1", Writeback(1, "B01", sub_status="B01-2"), legacy_journal_v0.Status.SUCCEEDED, None),
        ("2", Writeback("2", "B01", sub_status="B02-1"), legacy_journal_v0.Status.FAILED, "0200034"),
        ("3", Writeback(3, "B03"), legacy_journal_v0.Status.SENDING, None),  # killed on the wire
        ("4", Writeback(4, "B04"), legacy_journal_v0.Status.UNKNOWN, None),
        ("5", Writeback(5, "B05"), legacy_journal_v0.Status.QUEUED, None),
        ("6", Writeback(6, "B06"), legacy_journal_v0.Status.NOT_SENT, None),
        ("0007", Writeback("0007", "B07"), legacy_journal_v0.Status.SUCCEEDED, None),  # sent as 7
        ("7", Writeback(7, "B07"), legacy_journal_v0.Status.UNKNOWN, None),  # also 7, in doubt
        ("\uff18", Writeback("\uff18", "B08"), legacy_journal_v0.Status.SUCCEEDED, None),  # fullwidth 8
    ]
    journal = legacy_journal_v0.Journal(path)
    try:
        for data_id, record, status, code in rows:
            journal.mark(data_id, legacy_journal_v0.Status.QUEUED, record.to_json())
            if status is not legacy_journal_v0.Status.QUEUED:
                journal.mark(data_id, legacy_journal_v0.Status.SENDING)
            if status not in (legacy_journal_v0.Status.QUEUED, legacy_journal_v0.Status.SENDING):
                error = BusinessError(code=code, description="", endpoint=WB, meaning="m") if code else None
                journal.finish(data_id, status, error)
    finally:
        journal.close()


async def test_a_journal_of_the_previous_version_is_migrated_in_place(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "old.journal"
    write_legacy_journal(path)
    with Journal(path, readonly=True) as journal:  # reading does not migrate
        assert journal.schema_version() == 0 and journal.counts()[Status.SUCCEEDED] == 3
    with Journal(path) as journal:
        assert journal.schema_version() == SCHEMA_VERSION
        entries = {e.key: e for e in journal.entries()}
    assert sorted(entries, key=int) == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert entries["7"].status is Status.UNKNOWN  # "0007" and "7" were one record: in doubt wins
    assert entries["8"].status is Status.SUCCEEDED
    assert entries["1"].fingerprint == prepare(Writeback(1, "B01", sub_status="B01-2")).fingerprint
    assert entries["2"].code == "0200034"

    records = [
        Writeback(1, "B01", sub_status="B01-2"),
        Writeback(2, "B01", sub_status="B02-1"),
        *(Writeback(i, f"B0{i}") for i in range(3, 9)),
    ]
    report = await client.business_results.write_back_many(records, journal=path)
    assert sorted(sent_keys(server), key=int) == ["5", "6"]  # never sent, or provably not applied
    assert report.skipped == {SKIP_SUCCEEDED: 2, SKIP_FAILED: 1, SKIP_UNKNOWN: 3}
    with Journal(path) as journal:
        assert journal.schema_version() == SCHEMA_VERSION  # a second open leaves it as it is


# -- issue 15: the journal's commits grouped on its own thread, the crash guarantee unchanged ---------------

KILLED_IN_COMMIT = """
import asyncio, sys
from isales_async import ISalesClient, Writeback
from isales_async.batch._journal import Journal
from isales_async.testing import DEFAULT_AK, DEFAULT_SK

apply = Journal.apply

def announced(self, writes):
    if any(write[0] == "mark" and write[2] == "sending" for write in writes):
        print("committing intents", flush=True)
    return apply(self, writes)

Journal.apply = announced

def records():
    print("reading", flush=True)
    sys.stdin.readline()  # the test takes the journal's write lock meanwhile
    yield from (Writeback(i, "B01") for i in range(1, 101))

async def main():
    async with ISalesClient(sys.argv[1], ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1) as client:
        await client.business_results.write_back_many(records(), concurrency=4, journal=sys.argv[2])

asyncio.run(main())
"""


def test_a_kill_while_intents_are_queued_and_not_yet_committed_sent_none_of_them(tmp_path: Path) -> None:
    path = tmp_path / "killed.journal"
    with server_in_thread() as server:
        child = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", KILLED_IN_COMMIT, server.base_url, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        blocker = None
        try:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline() == "reading\n"  # the run has begun; nothing taken yet
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the journal's write lock: the batch's commit waits for it
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "committing intents\n"
            child.kill()  # SIGKILL in the middle of the grouped commit of the first intents
            child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate(timeout=30)
            if blocker is not None:
                blocker.execute("ROLLBACK")
                blocker.close()
        assert server.requests_to(WB) == []  # no request left before its intent was durable
        with Journal(path, readonly=True) as journal:
            assert journal.runs()[0] == 1 and sum(journal.counts().values()) == 0  # and nothing is in doubt

        async def rerun() -> BatchReport:
            async with ISalesClient(server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1) as client:
                return await client.business_results.write_back_many(good(100), concurrency=4, journal=path)

        report = asyncio.run(rerun())
        assert len(report.succeeded) == 100 and report.skipped == {}
        assert server.applied_counts() == {str(i): 1 for i in range(1, 101)}


async def test_what_a_kill_would_leave_in_doubt_stays_under_twice_the_concurrency(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    """Intents are committed a wave at a time, ahead of the workers: at any moment the rows
    a kill would leave in doubt are the records in flight and fewer than ``concurrency``
    more, admitted with their waves."""
    path = tmp_path / "waves.journal"
    in_doubt: list[int] = []

    def count_in_doubt(_: object) -> None:  # as each request arrives: what is committed so far
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            sql = "SELECT COUNT(*) FROM records WHERE status = ?"
            in_doubt.append(db.execute(sql, (Status.SENDING.value,)).fetchone()[0])

    server.on_request.append(count_in_doubt)
    server.latency = 0.001  # so that the workers' requests overlap
    report = await client.business_results.write_back_many(good(300), concurrency=6, journal=path)
    assert len(report.succeeded) == 300 and len(in_doubt) == 300
    assert min(in_doubt) >= 1  # each request's own intent was durable before it left
    assert max(in_doubt) < 2 * 6


LOCKED_OUT = """
import sys
from isales_async import Journal, JournalLockedError

try:
    Journal(sys.argv[1]).begin_run()
except JournalLockedError as exc:
    print("refused by", exc.holder)
"""


async def test_the_run_lock_holds_while_the_journal_thread_owns_the_connection(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "threaded.journal"
    arrived = asyncio.Event()
    server.inject(Fault.hang(endpoint=WB))
    server.on_request.append(lambda _: arrived.set())
    batch = asyncio.ensure_future(client.business_results.write_back_many(good(3), journal=path))
    await arrived.wait()  # the batch runs, its journal written from the journal's thread
    other = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", LOCKED_OUT, str(path)], capture_output=True, text=True, check=True
    )
    assert other.stdout.startswith(f"refused by pid {os.getpid()} on {socket.gethostname()}")
    server.release()
    assert len((await batch).succeeded) == 3
    with Journal(path) as journal:
        assert journal.begin_run() == 2  # the lock went with the batch


async def test_a_known_record_stopped_after_its_intent_keeps_the_row_the_earlier_run_left(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "put-back.journal"
    async with make_client() as client:
        first = await client.business_results.write_back_many([Writeback(i, "B01") for i in range(1, 4)], journal=path)
    changed = [Writeback(i, "B02") for i in range(1, 4)]  # each sent again: its payload changed
    arrived = asyncio.Event()
    server.inject(Fault.hang(endpoint=WB, times=1))
    server.on_request.append(lambda _: arrived.set())
    control = BatchControl()
    async with make_client(max_concurrency=1) as client:  # one on the wire; two recorded as leaving, waiting
        batch = asyncio.ensure_future(
            client.business_results.write_back_many(changed, concurrency=3, journal=path, control=control)
        )
        await arrived.wait()
        for _ in range(1000):  # bounded: until the three intents are committed
            with Journal(path, readonly=True) as reader:
                if reader.count(Status.SENDING) == 3:
                    break
            await asyncio.sleep(0.005)
        control.stop()
        server.release()
        report = await batch
    assert len(report.succeeded) == 1 and len(report.not_sent) == 2
    (sent,) = [o.key for o in report.succeeded]
    with Journal(path, readonly=True) as journal:
        rows = {e.key: e for e in journal.entries()}
        earlier = sorted(key for key, _ in journal.succeeded_in(first.journal_run))  # type: ignore[arg-type]
    for key in {"1", "2", "3"} - {sent}:  # put back: applied by the first run, with its payload
        row = rows[key]
        assert (row.status, row.run, row.record["busiResult"]) == (Status.SUCCEEDED, first.journal_run, "B01")
        assert row.fingerprint == prepare(Writeback(int(key), "B01")).fingerprint
    assert (rows[sent].status, rows[sent].record["busiResult"]) == (Status.SUCCEEDED, "B02")
    assert earlier == ["1", "2", "3"]  # the first run's successes, each once


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_a_duplicate_at_any_distance_is_caught_across_the_chunks_a_journal_reads(
    client: ISalesClient, server: FakeISales, tmp_path: Path, concurrency: int
) -> None:
    keys = list(range(1, 41))
    records = [Writeback(key, "B01") for key in keys]
    for distance in range(1, 25):  # each a dataId again, `distance` records after its first
        records.insert(min(len(records), 2 * distance + distance), Writeback(keys[2 * distance % 40], "B01"))
    report = await client.business_results.write_back_many(
        records, concurrency=concurrency, journal=tmp_path / f"dup{concurrency}.journal"
    )
    duplicates = [o for o in report.failed if isinstance(o.error, DuplicateRecordError)]
    assert len(report.succeeded) == 40 and len(duplicates) == len(records) - 40 == report.total - 40
    assert server.applied_counts() == {str(key): 1 for key in keys}


# -- point 10: journal faults are typed, stop the batch, and nothing unrecorded is sent ------------------


async def test_a_full_disk_stops_the_batch_and_nothing_is_sent_that_was_not_recorded(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "full.journal"
    with Journal(path) as journal:
        # A disk that fills up after a few dozen records, without root: cap the file's size in pages.
        pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
        journal._db.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(BatchAbortedError) as info:
            await client.business_results.write_back_many(good(3000), concurrency=4, journal=journal)
    error = info.value
    assert isinstance(error.cause, JournalError) and error.cause.path == str(path)
    assert str(path) in str(error.cause) and "full" in str(error.cause)
    assert isinstance(error.cause.__cause__, sqlite3.OperationalError)
    assert "journal" in error.reason
    report = error.report
    assert 10 <= report.total < 3000
    assert_server_agrees(server, report)
    keys = [o.key for o in [*report.succeeded, *report.failed, *report.unknown, *report.not_sent]]
    assert len(keys) == len(set(keys)) == report.total
    with Journal(path, readonly=True) as journal:
        states = {e.key: e.status for e in journal.entries()}
    sent = set(sent_keys(server))
    assert sent and all(states.get(key) in (Status.SENDING, Status.SUCCEEDED) for key in sent)
    assert set(server.applied_counts()) - {k for k, s in states.items() if s is Status.SUCCEEDED} <= {
        o.key for o in report.succeeded
    }  # a success the journal could not record is still reported


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"this is not an SQLite file at all" * 100, "not a database"), (None, "not a journal")],
    ids=["garbage", "another-sqlite-file"],
)
async def test_a_corrupt_journal_is_a_typed_error_before_anything_is_sent(
    client: ISalesClient, server: FakeISales, tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "bad.journal"
    if content is not None:
        path.write_bytes(content)
    else:
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE invoices (id INTEGER)")
        other.close()
    with pytest.raises(JournalError, match=problem) as info:
        await client.business_results.write_back_many(good(5), journal=path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert not isinstance(info.value, sqlite3.Error)
    assert server.requests == []


async def test_a_journal_from_a_newer_version_is_refused(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "future.journal"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer isales-async"):
        await client.business_results.write_back_many(good(5), journal=path)
    assert server.requests == []


def test_a_journal_that_cannot_be_created_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot be opened") as info:
        Journal(tmp_path / "no-such-directory" / "j.sqlite")
    assert "no-such-directory" in info.value.path
    with pytest.raises(JournalError, match="does not exist"):
        Journal(tmp_path / "missing.journal", readonly=True)


def test_a_read_only_journal_can_be_read_but_not_run(tmp_path: Path) -> None:
    path = tmp_path / "ro.journal"
    with Journal(path) as journal:
        journal.begin_run()
        journal.mark("1", Status.SUCCEEDED, {"dataId": 1, "busiResult": "B01"}, "fp")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with Journal(path, readonly=True) as journal:
        assert journal.counts()[Status.SUCCEEDED] == 1
        assert [e.record for e in journal.entries()] == [{"dataId": 1, "busiResult": "B01"}]
        with pytest.raises(JournalError, match="read-only"):
            journal.begin_run()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_journal_entry_reads_as_json(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as journal:
        journal.begin_run()
        journal.mark("9", Status.SENDING, {"dataId": "0009", "busiResult": "B01"}, "fp")
        journal.finish("9", Status.UNKNOWN, OutcomeUnknownError("reset after sending", endpoint=WB))
        (entry,) = journal.entries()
    line = entry.to_json()
    assert orjson.loads(orjson.dumps(line)) == line
    assert {k: line[k] for k in ("status", "dataId", "busiResult", "error", "message", "run")} == {
        "status": "unknown",
        "dataId": "0009",
        "busiResult": "B01",
        "error": "OutcomeUnknownError",
        "message": "reset after sending",
        "run": 1,
    }


# -- issue 19 review: a journal read as a run would find it, changing nothing ------------------------


def files_beside(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


def test_a_snapshot_of_an_old_journal_reads_it_migrated_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "old.journal"
    write_legacy_journal(path)
    before = files_beside(path)
    snapshot = Journal.snapshot(path)
    assert snapshot is not None
    with snapshot:
        assert snapshot.schema_version() == SCHEMA_VERSION
        found = snapshot.lookup("7")  # "0007" and "7" folded into one, in doubt, as a run migrates them
        assert found is not None and found[0] is Status.UNKNOWN
        read = {e.key: e for e in snapshot.entries()}
    assert files_beside(path) == before
    with Journal(path) as migrated:
        assert {e.key: (e.status, e.fingerprint) for e in migrated.entries()} == {
            k: (e.status, e.fingerprint) for k, e in read.items()
        }


def test_a_snapshot_of_an_empty_file_is_an_empty_journal_and_of_a_missing_one_none(tmp_path: Path) -> None:
    empty = tmp_path / "empty.journal"
    empty.write_bytes(b"")
    snapshot = Journal.snapshot(empty)
    assert snapshot is not None
    with snapshot:
        assert snapshot.counts() == {status: 0 for status in Status}
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.journal"]
    assert Journal.snapshot(tmp_path / "missing.journal") is None
    assert not (tmp_path / "missing.journal").exists()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.with_name("no-such-dir") / "j", "does not exist"),
        (lambda p: (p.write_bytes(b"garbage" * 500), p)[1], "not a database"),
    ],
    ids=["directory missing", "garbage"],
)
def test_check_and_snapshot_refuse_what_a_run_refuses_changing_nothing(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    path = make(tmp_path / "j.journal")
    before = files_beside(tmp_path / "x")
    for read in (Journal.check, Journal.snapshot):
        with pytest.raises(JournalError, match=problem):
            read(path)
    with pytest.raises(JournalError):
        Journal(path)
    assert files_beside(tmp_path / "x") == before


def test_check_refuses_a_journal_of_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "future.journal"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer isales-async"):
        Journal.check(path)


def test_reading_a_closed_journal_leaves_no_side_file_and_reading_an_open_one_sees_its_log(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    with Journal(path) as journal:
        journal.begin_run()
        journal.mark("1", Status.SUCCEEDED, {"dataId": 1, "busiResult": "B01"}, "fp")
    closed = files_beside(path)
    assert sorted(closed) == ["j.journal", "j.journal.lock"]
    with Journal(path, readonly=True) as reader:
        assert reader.counts()[Status.SUCCEEDED] == 1
    assert files_beside(path) == closed

    with Journal(path) as running:  # a run in progress: what it wrote is still in the -wal file
        running.begin_run()
        running.mark("2", Status.SENDING, {"dataId": 2, "busiResult": "B01"}, "fp2")
        with Journal(path, readonly=True) as reader:
            assert reader.lookup("2") == (Status.SENDING, 2, "fp2")
