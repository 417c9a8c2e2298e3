"""Hostile review of issue 15's speed work: the journal's waves, a batch's records stopped by
cancelling their worker, one deadline alarm per session, the signing key kept for its second,
and the pager's cancellation of its prefetches. Each test here failed before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest

from isales_async import BatchControl, CallStarted, ISalesClient, Journal, RetryPolicy, Status
from isales_async.batch._rerun import SKIP_UNKNOWN
from isales_async.testing import FakeISales, Fault

from .conftest import MakeClient
from .test_batch import WB, good, sent_keys

# -- the journal's waves -----------------------------------------------------------------------------------


def sending_rows(path: Path) -> int:
    """How many rows of the journal at ``path`` say "sending" (in doubt after a kill), as committed now."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM records WHERE status = ?", (Status.SENDING.value,)).fetchone()[0])


@pytest.mark.parametrize("concurrency", [1, 2, 3, 5])
async def test_what_a_kill_would_leave_in_doubt_stays_under_twice_an_odd_concurrency_too(
    client: ISalesClient, server: FakeISales, tmp_path: Path, concurrency: int
) -> None:
    """Waves are half the concurrency rounded up: a wave admitted while the one before it
    still held half less one reached ``concurrency`` besides the records in flight, so an
    odd concurrency left twice itself in doubt (6 of 3, 10 of 5), not fewer."""
    path = tmp_path / "odd.journal"
    in_doubt: list[int] = []

    server.on_request.append(lambda _: in_doubt.append(sending_rows(path)))  # as each request arrives
    server.latency = 0.001  # so that the workers' requests overlap
    report = await client.business_results.write_back_many(good(300), concurrency=concurrency, journal=path)
    assert len(report.succeeded) == 300 and len(in_doubt) == 300
    assert max(in_doubt) < 2 * concurrency


async def test_an_adaptive_batch_admits_waves_of_the_limit_in_force_not_of_its_maximum(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    """``concurrency="auto"`` starts at 2 in flight, but its waves were half its maximum (25
    of 50): a kill as the first two requests were on the wire left 25 in doubt (2 before
    issue 15), and a stop reported 23 not sent that a plain batch of 2 would never have taken."""
    path = tmp_path / "auto.journal"
    in_doubt: list[int] = []
    both_arrived = asyncio.Event()

    def arrive(_: object) -> None:
        in_doubt.append(sending_rows(path))
        if len(in_doubt) == 2:
            both_arrived.set()

    server.on_request.append(arrive)
    server.inject(Fault.hang(endpoint=WB, times=2))
    control = BatchControl()
    async with make_client() as client:
        batch = asyncio.ensure_future(
            client.business_results.write_back_many(good(200), concurrency="auto", journal=path, control=control)
        )
        await both_arrived.wait()
        control.stop()
        server.release()
        report = await batch
    assert report.concurrency.history[0].limit == 2 and len(report.succeeded) == 2
    assert max(in_doubt) < 2 * 2
    assert len(report.not_sent) < 2


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


# -- one deadline alarm per session ------------------------------------------------------------------------


class PlainClock:
    """A :class:`~isales_async.Clock` without ``call_at``: a deadline's alarm is a task sleeping on it."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_a_closed_client_leaves_no_alarm_task_behind_on_a_clock_without_call_at(make_client: MakeClient) -> None:
    """The session's one alarm is left set when its calls are done (it costs less than a new
    one a call); on a clock without ``call_at`` that is a task sleeping until the 60 s deadline,
    which outlived the closed client (a per-call alarm used to be cancelled with its call)."""
    before = asyncio.all_tasks()
    async with make_client(clock=PlainClock(), retry=RetryPolicy(deadline=60.0)) as client:
        await client.business_results.write_back(1, "B01")
    await asyncio.sleep(0)  # a cancelled task ends at its next turn
    assert asyncio.all_tasks() == before
