"""Hostile review of issue 15's speed work: the journal's waves, a batch's records stopped by
cancelling their worker, one deadline alarm per session, the signing key kept for its second,
and the pager's cancellation of its prefetches. Each test here failed before its fix."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from isales_async import ISalesClient, Status
from isales_async.testing import FakeISales

from .test_batch import good

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
