"""Adaptive writeback concurrency: the pure AIMD decisions, the limit the workers obey, and
batches with ``concurrency="auto"`` against a fake server of a given capacity."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_async import (
    DEFAULT_MAX_CONCURRENCY,
    BatchControl,
    ConcurrencyReport,
    ISalesClient,
    LimitChange,
    Progress,
    RateLimitedError,
    RetryPolicy,
    RetryScheduled,
    ValidationError,
)
from isales_async.batch._adaptive import HISTORY_SIZE, START_LIMIT, AimdLimit, AimdSettings
from isales_async.batch._concurrency import AdaptiveConcurrency
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, Capacity, FakeClock, FakeISales, Fault

from .test_batch import assert_each_once, assert_server_agrees, good

LATENCY = 0.05

# -- the pure decisions ------------------------------------------------------------------------


def grown(limit: AimdLimit, successes: int, *, now: float = 1.0, latency: float = LATENCY) -> None:
    for _ in range(successes):
        limit.completed(limit.sent(now), now + latency)


def test_it_starts_low_and_grows_by_one_per_window_of_successes() -> None:
    limit = AimdLimit(10)
    assert limit.limit == START_LIMIT == 2
    grown(limit, 1)
    assert limit.limit == 2
    grown(limit, 1)  # a window of 2 successes
    assert limit.limit == 3
    grown(limit, 2)
    assert limit.limit == 3
    grown(limit, 1)
    assert limit.limit == 4
    assert AimdLimit(1).limit == 1


def test_it_never_grows_above_the_maximum() -> None:
    limit = AimdLimit(4)
    grown(limit, 100)
    assert limit.limit == limit.peak == 4
    assert [c.limit for c in limit.history] == [2, 3, 4]


def test_a_429_halves_once_per_congestion_event_and_never_below_one() -> None:
    limit = AimdLimit(64)
    grown(limit, 200)
    before = limit.limit
    tickets = [limit.sent(2.0) for _ in range(5)]  # in flight together when the server says 429
    assert limit.throttled(tickets[0], 2.1) is True
    assert limit.limit == before // 2
    assert not any(limit.throttled(t, 2.1) for t in tickets[1:])  # the same event: answered already
    assert limit.limit == before // 2
    for _ in range(10):
        limit.throttled(limit.sent(3.0), 3.1)
    assert limit.limit == 1
    assert limit.throttled(limit.sent(4.0), 4.1) is False  # already at the floor
    assert limit.history[-1].reason == "429/503"


def test_a_latency_jump_halves_and_a_lasting_one_becomes_the_new_normal() -> None:
    limit = AimdLimit(64)
    grown(limit, 100, latency=0.05)
    before = limit.limit
    now = 10.0
    decreases = []
    for _ in range(60):  # the server is ten times slower from now on
        previous = limit.limit
        limit.completed(limit.sent(now), now + 0.5)
        if limit.limit < previous:
            decreases.append(limit.limit)
        now += 0.5
    assert decreases and decreases[0] == before // 2
    assert limit.history[-1].reason in ("latency", "grow")
    assert any(c.reason == "latency" for c in limit.history)
    assert len(decreases) < 6  # not a halving per sample: the baseline learns the new latency
    after = limit.limit
    grown(limit, 10 * after, now=now, latency=0.5)
    assert limit.limit > after  # it grows again at the new latency


def test_latency_jitter_below_the_floor_is_no_jump() -> None:
    limit = AimdLimit(8)
    for i in range(200):
        latency = 0.0001 if i % 2 else 0.004  # a fast server: 40x apart, both under 10 ms
        limit.completed(limit.sent(float(i)), i + latency)
    assert limit.decreases == 0 and limit.limit == 8


def test_settled_is_the_mean_limit_of_the_successes_since_the_first_decrease() -> None:
    limit = AimdLimit(16)
    assert limit.settled() == 2.0  # no decrease yet: the limit itself
    grown(limit, 2 + 3 + 4 + 5 + 6 + 7, now=0.0, latency=0.0)  # up to 8
    assert limit.limit == 8
    limit.throttled(limit.sent(10.0), 10.0)  # down to 4
    grown(limit, 4, now=20.0, latency=0.0)  # 4 successes under 4, then up to 5
    grown(limit, 1, now=30.0, latency=0.0)  # 1 under 5
    assert limit.settled() == pytest.approx((4 * 4 + 5) / 5)
    report = limit.report()
    assert (report.mode, report.final, report.peak, report.decreases) == ("auto", 5, 8, 1)
    assert report.history[-1] == LimitChange(20.0, 5, "grow")
    assert "settled at 4.2 (final 5, peak 8; 7 up, 1 down)" in report.summary()
    assert ConcurrencyReport.fixed(7).summary() == "concurrency 7"


def test_a_limit_not_in_full_use_does_not_grow() -> None:
    limit = AimdLimit(16)
    grown(limit, 20)
    before = limit.limit
    for _ in range(100):  # the input (or the client's own limit) keeps one below the limit
        limit.completed(limit.sent(1.0, in_flight=before - 1), 1.05)
    assert limit.limit == before
    limit.completed(limit.sent(1.0, in_flight=before), 1.05)  # once the whole limit is used
    grown(limit, before, now=1.0)
    assert limit.limit == before + 1


def test_the_history_keeps_the_latest_changes_and_the_counts_keep_them_all() -> None:
    limit = AimdLimit(1000)
    for _ in range(HISTORY_SIZE):
        grown(limit, limit.limit)
        limit.throttled(limit.sent(1.0), 1.0)
        grown(limit, limit.limit)
    report = limit.report()
    assert len(report.history) == HISTORY_SIZE
    assert report.increases + report.decreases > HISTORY_SIZE


@pytest.mark.parametrize("bad", [0, -1, 1001, True, 2.5, "8"])
def test_the_maximum_is_validated(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        AimdLimit(bad)  # type: ignore[arg-type]
    assert caught.value.field == "max_concurrency"


events = st.lists(
    st.tuples(st.sampled_from(["ok", "429", "slow", "old"]), st.floats(0.0, 2.0, allow_nan=False)), max_size=300
)


@given(st.integers(1, 40), events)
def test_invariants_hold_for_any_sequence_of_events(maximum: int, script: list[tuple[str, float]]) -> None:
    limit = AimdLimit(maximum, settings=AimdSettings(min_samples=1))
    stale = limit.sent(0.0)
    now = 0.0
    for kind, latency in script:
        before, epoch = limit.limit, limit.epoch
        ticket = stale if kind == "old" else limit.sent(now)
        now += latency
        if kind in ("429", "old"):
            changed = limit.throttled(ticket, now)
            if ticket.epoch == epoch:
                assert limit.limit == max(1, before // 2) and limit.epoch == epoch + 1
            else:
                assert not changed and limit.limit == before  # a signal of an answered event
        else:
            limit.completed(ticket, now + (5.0 if kind == "slow" else 0.0))
            assert limit.limit in (before, before + 1, max(1, before // 2))
        assert 1 <= limit.limit <= maximum
        assert limit.peak <= maximum
        stale = ticket if kind != "old" else stale


# -- the limit the workers obey ----------------------------------------------------------------


async def test_shrinking_the_limit_cancels_nothing_and_holds_new_records_back() -> None:
    gate = AdaptiveConcurrency(FakeClock(), 8)
    gate.aimd.limit = 4
    release = anyio.Event()
    entered: list[int] = []
    finished: list[int] = []

    async def holder(n: int) -> None:
        async with gate.slot():
            entered.append(n)
            await release.wait()
            finished.append(n)

    async with anyio.create_task_group() as group:
        for n in range(4):
            group.start_soon(holder, n)
        await anyio.wait_all_tasks_blocked()
        assert entered == [0, 1, 2, 3]
        gate.aimd.limit = 2  # shrinks while four are in hand
        group.start_soon(holder, 4)
        await anyio.wait_all_tasks_blocked()
        assert entered == [0, 1, 2, 3] and gate.in_hand == 4  # no one cancelled, no one new
        release.set()
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert gate.in_hand == 0


# -- batches against a server of a given capacity -----------------------------------------------


def fake(capacity: int | None, *, retry_after: str | None = None) -> tuple[FakeISales, FakeClock]:
    clock = FakeClock(virtual=True)
    server = FakeISales(
        latency=LATENCY,
        clock=clock,
        capacity=Capacity(capacity, retry_after=retry_after) if capacity is not None else None,
    )
    return server, clock


def client_of(server: FakeISales, clock: FakeClock, **options: object) -> ISalesClient:
    return ISalesClient(
        "https://isales.test",
        ak=DEFAULT_AK,
        sk=DEFAULT_SK,
        vdn_id=1,
        clock=clock,
        transport=server.transport(),
        max_concurrency=100,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("retry_after", [None, "1"])
@pytest.mark.parametrize("capacity", [2, 4, 8, 12])
async def test_auto_converges_near_the_servers_capacity_and_applies_nothing_twice(
    capacity: int, retry_after: str | None
) -> None:
    server, clock = fake(capacity, retry_after=retry_after)
    records = good(60 * capacity)
    seen: list[Progress] = []
    async with client_of(server, clock) as client:  # the default retry policy
        report = await client.business_results.write_back_many(
            records, concurrency="auto", max_concurrency=40, on_progress=seen.append
        )
    assert_each_once(records, report)
    assert_server_agrees(server, report)
    assert len(report.succeeded) == len(records) and not report.unknown and not report.not_sent
    assert server.capacity is not None and server.capacity.refused > 0  # it did meet the capacity
    assert server.route_peak["callBusiResult"] <= capacity
    c = report.concurrency
    assert c is not None and c.mode == "auto"
    assert capacity / 2 <= c.settled <= capacity + 1
    assert c.decreases >= 1 and c.peak <= capacity + 1
    assert {p.concurrency for p in seen} <= set(range(1, c.peak + 1))
    assert seen[-1].concurrency == c.final


async def test_without_a_capacity_it_grows_to_the_maximum_and_stays() -> None:
    server, clock = fake(None)
    async with client_of(server, clock) as client:
        report = await client.business_results.write_back_many(good(400), concurrency="auto", max_concurrency=12)
    c = report.concurrency
    assert c is not None and (c.final, c.peak, c.decreases) == (12, 12, 0)
    assert server.route_peak["callBusiResult"] == 12


async def test_a_latency_jump_halves_the_limit() -> None:
    server, clock = fake(None)
    limits: list[int] = []

    def slow_down_halfway(progress: Progress) -> None:
        limits.append(progress.concurrency)
        if progress.done == 300:
            server.latency = 10 * LATENCY

    async with client_of(server, clock) as client:
        report = await client.business_results.write_back_many(
            good(500), concurrency="auto", max_concurrency=16, on_progress=slow_down_halfway
        )
    c = report.concurrency
    assert c is not None
    latency_cuts = [change for change in c.history if change.reason == "latency"]
    assert latency_cuts, c.history
    before = limits[299]
    assert before == 16  # it had grown to the maximum before the server slowed
    assert min(limits[300:]) <= before // 2
    assert len(report.succeeded) == 500 and server.applied_counts().most_common(1)[0][1] == 1


async def test_a_fixed_concurrency_reports_itself() -> None:
    server, clock = fake(None)
    seen: list[Progress] = []
    async with client_of(server, clock) as client:
        report = await client.business_results.write_back_many(good(30), concurrency=3, on_progress=seen.append)
    assert report.concurrency == ConcurrencyReport.fixed(3)
    assert {p.concurrency for p in seen} == {3}
    assert "concurrency" not in report.summary()


async def test_the_summary_says_where_auto_settled() -> None:
    server, clock = fake(4)
    async with client_of(server, clock, retry=RetryPolicy(attempts=10, deadline=None)) as client:
        report = await client.business_results.write_back_many(good(200), concurrency="auto")
    assert report.concurrency is not None
    assert report.concurrency.summary() in report.summary()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency": "fast"}, "concurrency"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 4, "max_concurrency": 8}, "max_concurrency"),
        ({"concurrency": "auto", "max_concurrency": 0}, "max_concurrency"),
        ({"concurrency": "auto", "max_concurrency": 1001}, "max_concurrency"),
        ({"concurrency": "auto", "max_concurrency": "8"}, "max_concurrency"),
    ],
)
async def test_bad_concurrency_options_are_refused_naming_the_field(options: dict[str, object], field: str) -> None:
    server, clock = fake(None)
    async with client_of(server, clock) as client:
        with pytest.raises(ValidationError) as caught:
            await client.business_results.write_back_many(good(3), **options)  # type: ignore[arg-type]
        assert caught.value.field == field
        with pytest.raises(ValidationError) as planned:
            await client.business_results.plan_write_back(good(3), **options)  # type: ignore[arg-type]
        assert planned.value.field == field
    assert not server.requests


async def test_auto_defaults_its_maximum() -> None:
    server, clock = fake(None)
    async with client_of(server, clock) as client:
        report = await client.business_results.write_back_many(good(3000), concurrency="auto")
    assert report.concurrency is not None and report.concurrency.final == DEFAULT_MAX_CONCURRENCY


# -- the fake's capacity, and virtual time -------------------------------------------------------


async def test_virtual_time_lets_concurrent_sleeps_overlap() -> None:
    clock = FakeClock(virtual=True)
    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(clock.sleep, 0.05)
    assert clock.monotonic() == pytest.approx(0.05)  # ten at once take 50 ms, not 500
    await clock.sleep(0.05)
    await clock.sleep(0.05)
    assert clock.monotonic() == pytest.approx(0.15)  # one after another add up


@pytest.mark.parametrize(("status", "retry_after"), [(429, None), (429, "2"), (503, "1")])
async def test_a_capacity_refuses_what_arrives_above_it_unprocessed(status: int, retry_after: str | None) -> None:
    clock = FakeClock(virtual=True)
    server = FakeISales(latency=LATENCY, clock=clock, capacity=Capacity(3, status=status, retry_after=retry_after))
    answers: list[int] = []
    async with client_of(server, clock, retry=RetryPolicy(attempts=1)) as client:

        async def write(data_id: int) -> None:
            try:
                await client.business_results.write_back(data_id, "B01")
                answers.append(200)
            except Exception as exc:
                answers.append(getattr(exc, "status", 0))
                assert getattr(exc, "retry_after", None) == (float(retry_after) if retry_after else None)

        async with anyio.create_task_group() as group:
            for data_id in range(1, 6):
                group.start_soon(write, data_id)
        await client.business_results.write_back(9, "B01")  # alone again: admitted
    assert sorted(answers) == [200, 200, 200, status, status]
    assert server.capacity is not None and server.capacity.refused == 2
    assert server.route_peak["callBusiResult"] == 3 and server.route_in_flight["callBusiResult"] == 0
    assert len(server.applied_counts()) == 4  # the refused two were not processed


async def test_a_capacity_covers_its_endpoint_only_unless_it_names_none() -> None:
    clock = FakeClock(virtual=True)
    server = FakeISales(latency=LATENCY, clock=clock, capacity=Capacity(0))
    async with client_of(server, clock, retry=RetryPolicy(attempts=1)) as client:
        assert (await client.obs_result_codes.page()).items  # another endpoint: not covered
        server.capacity = Capacity(0, endpoint=None)
        with pytest.raises(Exception) as caught:
            await client.obs_result_codes.page()
        assert getattr(caught.value, "status", None) == 429


@pytest.mark.parametrize("options", [{"limit": -1}, {"limit": 2.5}, {"limit": True}, {"limit": 2, "status": 500}])
def test_a_capacity_is_validated(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"limit|status"):
        Capacity(**options)  # type: ignore[arg-type]


# -- the signals, and stopping an adaptive batch ---------------------------------------------------


async def test_the_session_hands_a_calls_retries_to_on_retry() -> None:
    server, clock = fake(None)
    server.inject(Fault.status_code(429), Fault.status_code(503, retry_after="1"))
    seen: list[RetryScheduled] = []
    async with client_of(server, clock) as client:
        await client.business_results._send_write_back("7", {"busiResult": "B01"}, on_retry=seen.append)
    assert [(event.attempt, event.reason) for event in seen] == [(1, "429"), (2, "503")]
    assert server.applied_counts() == {"7": 1}


async def test_a_503_capacity_drives_it_as_a_429_does() -> None:
    clock = FakeClock(virtual=True)
    server = FakeISales(latency=LATENCY, clock=clock, capacity=Capacity(6, status=503))
    records = good(400)
    async with client_of(server, clock) as client:
        report = await client.business_results.write_back_many(records, concurrency="auto")
    assert_each_once(records, report)
    assert len(report.succeeded) == 400 and server.route_peak["callBusiResult"] <= 6
    c = report.concurrency
    assert c is not None and c.decreases >= 1 and 3 <= c.settled <= 7
    assert any(change.reason == "429/503" for change in c.history)


async def test_records_refused_on_every_attempt_fail_unapplied_and_drive_the_limit_to_one() -> None:
    server, clock = fake(0)  # refuses every writeback
    records = good(40)
    async with client_of(server, clock, retry=RetryPolicy(attempts=2)) as client:
        report = await client.business_results.write_back_many(records, concurrency="auto", max_concurrency=8)
    assert_each_once(records, report)
    assert len(report.failed) == 40 and all(isinstance(o.error, RateLimitedError) for o in report.failed)
    assert not server.applied
    c = report.concurrency
    assert c is not None and c.final == 1 and c.peak == START_LIMIT


async def test_stopping_an_adaptive_batch_reports_every_record_taken_once() -> None:
    server, clock = fake(4)
    control = BatchControl()
    records = good(300)

    def stop_at_100(progress: Progress) -> None:
        if progress.done == 100:
            control.stop()

    async with client_of(server, clock) as client:
        report = await client.business_results.write_back_many(
            records, concurrency="auto", on_progress=stop_at_100, control=control
        )
    assert report.stopped_early and 100 <= report.total < 300
    reported = [o.record for o in [*report.succeeded, *report.failed, *report.unknown, *report.not_sent]]
    assert len(reported) == len(set(reported)) == report.total
    assert not report.unknown and not report.failed
    assert_server_agrees(server, report)
