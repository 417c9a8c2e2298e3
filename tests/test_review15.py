"""Hostile review of issue 15's speed work: the journal's waves, a batch's records stopped by
cancelling their worker, one deadline alarm per session, the signing key kept for its second,
and the pager's cancellation of its prefetches. Each test here failed before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from isales_async import CallStarted, ISalesClient, Journal, Status
from isales_async.batch._rerun import SKIP_UNKNOWN
from isales_async.testing import FakeISales, Fault

from .conftest import MakeClient
from .test_batch import WB, good, sent_keys

# -- the journal's waves -----------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 2, 3, 5])
async def test_what_a_kill_would_leave_in_doubt_stays_under_twice_an_odd_concurrency_too(
    client: ISalesClient, server: FakeISales, tmp_path: Path, concurrency: int
) -> None:
    """Waves are half the concurrency rounded up: a wave admitted while the one before it
    still held half less one reached ``concurrency`` besides the records in flight, so an
    odd concurrency left twice itself in doubt (6 of 3, 10 of 5), not fewer."""
    path = tmp_path / "odd.journal"
    in_doubt: list[int] = []

    def count_in_doubt(_: object) -> None:  # as each request arrives: what is committed so far
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            sql = "SELECT COUNT(*) FROM records WHERE status = ?"
            in_doubt.append(db.execute(sql, (Status.SENDING.value,)).fetchone()[0])

    server.on_request.append(count_in_doubt)
    server.latency = 0.001  # so that the workers' requests overlap
    report = await client.business_results.write_back_many(good(300), concurrency=concurrency, journal=path)
    assert len(report.succeeded) == 300 and len(in_doubt) == 300
    assert max(in_doubt) < 2 * concurrency


async def test_a_batch_cancelled_from_outside_puts_back_what_never_left(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    """Records whose intent was committed and which waited (here for the client's one slot)
    when the caller cancelled the batch were left "sending", so a re-run took them for in
    doubt and never sent them; the one on the wire stays in doubt."""
    path = tmp_path / "cancelled.journal"
    all_started = asyncio.Event()
    started: list[object] = []

    def count_calls(event: object) -> None:  # a call starts once its intent is durable
        if isinstance(event, CallStarted):
            started.append(event)
            if len(started) == 3:
                all_started.set()

    server.inject(Fault.hang(endpoint=WB, times=1))
    async with make_client(max_concurrency=1, hooks=[count_calls]) as client:
        batch = asyncio.ensure_future(client.business_results.write_back_many(good(3), concurrency=3, journal=path))
        await all_started.wait()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        server.release()
    (on_the_wire,) = sent_keys(server)
    with Journal(path, readonly=True) as journal:
        states = {e.key: e.status for e in journal.entries()}
    assert states == {key: Status.SENDING if key == on_the_wire else Status.QUEUED for key in "123"}

    async with make_client() as client:
        rerun = await client.business_results.write_back_many(good(3), journal=path)
    assert sorted(o.key for o in rerun.succeeded) == sorted({"1", "2", "3"} - {on_the_wire})
    assert rerun.skipped == {SKIP_UNKNOWN: 1}
