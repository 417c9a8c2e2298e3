"""The writeback hot path keeps its guarantees with fewer objects a call: one alarm watches
every call's deadline, and a batch stops its unsent records without a cancel scope each."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest

from isales_async import (
    BatchControl,
    CallStarted,
    ClientClosedError,
    OutcomeUnknownError,
    Progress,
    ReadTimeoutError,
    RequestSent,
    RetryPolicy,
    Timeouts,
    ValidationError,
    Writeback,
)
from isales_async._clock import SystemClock
from isales_async.batch._writeback import PreparedWriteback, fingerprint, prepare, writeback_body
from isales_async.testing import FakeClock, FakeISales, Fault

from .conftest import MakeClient

WB = "callBusiResult"


def good(n: int) -> list[Writeback]:
    return [Writeback(i, "B01") for i in range(1, n + 1)]


class CountingClock(FakeClock):
    """A fake clock that counts the alarms set on it."""

    def __init__(self) -> None:
        super().__init__()
        self.alarms_set = 0

    def call_at(self, when: float, callback: Callable[[], object]) -> object:  # type: ignore[override]
        self.alarms_set += 1
        return super().call_at(when, callback)


async def test_one_alarm_watches_the_deadlines_of_many_calls(make_client: MakeClient) -> None:
    """A call's deadline is its start plus the policy's, so a later call's is later: the
    alarm set for the first call's deadline serves every call after it."""
    clock = CountingClock()
    async with make_client(clock=clock, retry=RetryPolicy(deadline=30.0)) as client:
        for data_id in range(1, 101):
            await client.business_results.write_back(data_id, "B01")
    assert clock.alarms_set <= 2


async def test_an_earlier_deadline_ends_its_call_and_the_later_one_still_runs(
    make_client: MakeClient, server: FakeISales
) -> None:
    """A call started later with a shorter deadline moves the alarm earlier; once it
    rings, the alarm is set again for the call still running, which its own deadline ends."""
    clock = FakeClock(autojump=False)
    arrived: list[object] = []
    both_arrived = asyncio.Event()

    def arrive(request: object) -> None:
        arrived.append(request)
        if len(arrived) == 2:
            both_arrived.set()

    server.on_request.append(arrive)
    server.inject(Fault.hang(endpoint=WB, times=2))
    client = make_client(clock=clock, retry=RetryPolicy(deadline=60.0, attempts=1))
    async with client:
        long_call = asyncio.ensure_future(client.business_results.write_back(1, "B01"))
        short = client.with_options(retry=RetryPolicy(deadline=5.0, attempts=1))
        short_call = asyncio.ensure_future(short.business_results.write_back(2, "B01"))
        try:
            await both_arrived.wait()
            clock.advance(6.0)
            with pytest.raises(OutcomeUnknownError, match="5s deadline passed"):
                await short_call
            assert not long_call.done()
            clock.advance(55.0)
            with pytest.raises(OutcomeUnknownError, match="60s deadline passed"):
                await long_call
        finally:
            server.release()
        assert client._session.in_flight == 0


async def test_the_deadlines_of_finished_calls_are_let_go_while_one_call_runs_long(
    make_client: MakeClient, server: FakeISales
) -> None:
    """One call held by the server keeps the earliest deadline; the calls that finish
    after it started are not kept until that deadline passes."""
    clock = FakeClock(autojump=False)
    arrived = asyncio.Event()
    server.on_request.append(lambda _: arrived.set())
    server.inject(Fault.hang(endpoint="queryOBSResultCode"))
    async with make_client(clock=clock, retry=RetryPolicy(deadline=60.0, attempts=1)) as client:
        held = asyncio.ensure_future(client.obs_result_codes.page())
        try:
            await arrived.wait()
            for data_id in range(1, 1001):
                await client.business_results.write_back(data_id, "B01")
            assert len(client._session._deadlines._heap) < 200
        finally:
            server.release()
            await held


# -- stopping a batch: each record's wait is ended by cancelling its worker's task ---------------------


def hang_writes(server: FakeISales, count: int) -> asyncio.Event:
    """Hold the first ``count`` writebacks at the server; the event is set once all have arrived."""
    arrived = asyncio.Event()
    server.inject(Fault.hang(endpoint=WB, times=count))

    def arrive(_: object) -> None:
        if len(server.requests_to(WB)) >= count:
            arrived.set()

    server.on_request.append(arrive)
    return arrived


async def cancel_once_in_flight(
    batch: asyncio.Future[object],
    arrived: asyncio.Event,
    server: FakeISales,
    before: Callable[[], None] | None = None,
) -> None:
    """Once the held writes have arrived, (``before()`` then) cancel ``batch``: the caller's
    cancellation must come out of it; the server lets the writes go in any case."""
    try:
        await arrived.wait()
        if before is not None:
            before()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
    finally:
        server.release()


async def test_a_hook_that_abandons_the_batch_ends_the_wait_of_its_own_record(
    make_client: MakeClient, server: FakeISales
) -> None:
    """The hook runs in the record's own task, which cannot be cancelled while it runs: its
    wait for the answer is ended as soon as it begins, and the record is in doubt."""
    control = BatchControl()
    server.inject(Fault.hang(endpoint=WB))

    def abandon_once_sent(event: object) -> None:
        if isinstance(event, RequestSent):
            control.abandon()

    async with make_client(hooks=[abandon_once_sent]) as client:
        try:
            report = await client.business_results.write_back_many(
                [Writeback(1, "B01"), Writeback(2, "B01")], concurrency=1, control=control
            )
        finally:
            server.release()
        assert client._session.in_flight == 0
    assert [o.data_id for o in report.unknown] == [1]
    assert isinstance(report.unknown[0].error, OutcomeUnknownError)
    assert report.total == 1 and report.stop_reason == "abandoned by BatchControl.abandon()"


async def test_a_stopped_record_leaves_no_cancellation_pending_in_its_worker(
    make_client: MakeClient, server: FakeISales
) -> None:
    """The worker that settles a stopped record goes on as if never cancelled: on Python
    3.11+ its task counts no cancellation (the next wait of its would be cancelled)."""
    arrived = hang_writes(server, 1)
    control = BatchControl()
    pending: list[int] = []

    def count_cancellations(progress: Progress) -> None:
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)
        pending.append(cancelling() if cancelling is not None else 0)

    async with make_client(max_concurrency=1) as client:  # the second record waits unsent for the slot
        batch = asyncio.ensure_future(
            client.business_results.write_back_many(
                good(2), concurrency=2, control=control, on_progress=count_cancellations
            )
        )
        await arrived.wait()
        control.stop()
        server.release()
        report = await batch
    assert [o.data_id for o in report.succeeded] == [1] and [o.data_id for o in report.not_sent] == [2]
    assert pending == [0, 0]


async def test_cancelling_a_stopped_batch_from_outside_still_cancels_its_caller(
    make_client: MakeClient, server: FakeISales
) -> None:
    """A batch abandoned and cancelled at once: the records' cancellation is the batch's
    own, the caller's passes through, whichever comes first."""
    arrived = hang_writes(server, 2)
    control = BatchControl()
    async with make_client() as client:
        batch = asyncio.ensure_future(client.business_results.write_back_many(good(2), concurrency=2, control=control))
        await cancel_once_in_flight(batch, arrived, server, before=control.abandon)
        assert client._session.in_flight == 0


async def test_cancelling_a_batch_from_outside_is_not_taken_for_a_stop(
    make_client: MakeClient, server: FakeISales
) -> None:
    arrived = hang_writes(server, 3)
    async with make_client() as client:
        batch = asyncio.ensure_future(client.business_results.write_back_many(good(3), concurrency=3))
        await cancel_once_in_flight(batch, arrived, server)
        assert client._session.in_flight == 0


async def test_a_hook_that_stops_the_batch_before_its_record_is_sent_keeps_the_record_unsent(
    make_client: MakeClient, server: FakeISales
) -> None:
    """Stopped from its own task with no wait left before the attempt would go out: the
    record is not sent, and its worker ends as any other, uncancelled."""
    control = BatchControl()

    def abandon_as_it_starts(event: object) -> None:
        if isinstance(event, CallStarted):
            control.abandon()

    async with make_client(hooks=[abandon_as_it_starts]) as client:
        report = await client.business_results.write_back_many(good(3), concurrency=1, control=control)
    assert [o.data_id for o in report.not_sent] == [1] and report.total == 1
    assert server.requests_to(WB) == []


# -- what a call checks again after it waited ----------------------------------------------------------


async def test_a_call_waiting_for_the_limiter_when_the_client_closes_is_not_sent(
    make_client: MakeClient, server: FakeISales
) -> None:
    arrived = hang_writes(server, 1)
    client = make_client(max_concurrency=1)
    async with client:
        holder = asyncio.ensure_future(client.business_results.write_back(1, "B01"))
        await arrived.wait()  # the only slot is held by a write the server keeps
        queued = asyncio.ensure_future(client.business_results.write_back(2, "B01"))
        await asyncio.sleep(0)  # it reaches the limiter and waits there
        closing = asyncio.ensure_future(client.aclose())
        await asyncio.sleep(0)
        server.release()
        with pytest.raises(ClientClosedError):
            await queued
        await asyncio.gather(holder, closing, return_exceptions=True)
    assert [r.path.rsplit("/", 1)[-1] for r in server.requests_to(WB)] == ["1"]


async def test_a_retry_after_the_client_closed_is_not_sent(make_client: MakeClient, server: FakeISales) -> None:
    clock = FakeClock(autojump=False)
    server.inject(Fault.status_code(503, retry_after="5", endpoint=WB))
    client = make_client(clock=clock)
    async with client:
        call = asyncio.ensure_future(client.business_results.write_back(1, "B01"))
        await clock.wait_for_sleepers(1)  # the 503 came back: the retry waits 5 s
        await client.aclose()
        clock.advance(5.0)
        with pytest.raises(ClientClosedError):
            await call
    assert len(server.requests_to(WB)) == 1


# -- what a record costs before it is sent ---------------------------------------------------------------


def test_a_prepared_record_computes_its_fingerprint_only_when_asked() -> None:
    prepared = prepare(Writeback(7, "B01", sub_status="B01-1"))
    assert prepared._fingerprint is None  # a batch without a journal never asks
    assert prepared.fingerprint == fingerprint("7", {"busiResult": "B01", "subStatus": "B01-1"})
    assert prepared == PreparedWriteback("7", {"busiResult": "B01", "subStatus": "B01-1"})


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        ((None, None, None), {"busiResult": "B01"}),
        (("", "", ""), {"busiResult": "B01"}),
        (
            ("B01-1", "desc", "2033"),
            {"busiResult": "B01", "subStatus": "B01-1", "busiResultDesc": "desc", "workNo": "2033"},
        ),
        ((None, "desc", None), {"busiResult": "B01", "busiResultDesc": "desc"}),
    ],
)
def test_a_body_holds_the_given_fields_in_the_api_order(fields: tuple[str | None, ...], body: dict[str, str]) -> None:
    built = writeback_body("B01", *fields)
    assert built == body and list(built) == list(body)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        (("x" * 51, None, None), "sub_status"),
        ((None, "\ud800", None), "busi_result_desc"),
        ((None, None, 7), "work_no"),
        (("x" * 51, None, 7), "sub_status"),  # the first bad field in the API's order is named
    ],
)
def test_a_bad_optional_field_is_named(fields: tuple[object, ...], bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        writeback_body("B01", *fields)  # type: ignore[arg-type]
    assert info.value.field == bad


# -- the aiohttp transport watches each request's total timeout itself --------------------------------


@pytest.mark.sockets
async def test_a_request_past_its_total_timeout_over_aiohttp_is_a_read_timeout(
    make_client: MakeClient, server: FakeISales
) -> None:
    server.inject(Fault.hang(endpoint="queryOBSResultCode"), Fault.hang(endpoint=WB))
    timeouts = Timeouts(connect=1.0, read=None, total=0.05)
    async with make_client(timeouts=timeouts, retry=RetryPolicy(attempts=1), clock=SystemClock()) as client:
        try:
            with pytest.raises(ReadTimeoutError, match="no response in time"):
                await client.obs_result_codes.page()
            with pytest.raises(OutcomeUnknownError) as info:
                await client.business_results.write_back(9, "B01")
        finally:
            server.release()
        assert isinstance(info.value.__cause__, ReadTimeoutError)
        assert client._session.in_flight == 0
        await client.obs_result_codes.page(page_size=1)  # the connection pool serves the next request
    assert len(server.requests_to(WB)) == 1


@pytest.mark.sockets
async def test_a_deadline_before_the_total_timeout_over_aiohttp_is_the_deadline(
    make_client: MakeClient, server: FakeISales
) -> None:
    """Both cancel the request's task: the session tells its deadline's from the transport's."""
    clock = FakeClock(autojump=False)
    arrived = asyncio.Event()
    server.on_request.append(lambda _: arrived.set())
    server.inject(Fault.hang(endpoint=WB))
    async with make_client(clock=clock, retry=RetryPolicy(deadline=5.0, attempts=3)) as client:
        call = asyncio.ensure_future(client.business_results.write_back(9, "B01"))
        try:
            await arrived.wait()
            clock.advance(6.0)  # the deadline passes; the 60 s total timeout (real time) does not
            with pytest.raises(OutcomeUnknownError, match="5s deadline passed"):
                await call
        finally:
            server.release()
    assert len(server.requests_to(WB)) == 1


@pytest.mark.sockets
async def test_cancelling_a_request_over_aiohttp_is_not_taken_for_its_timeout(
    make_client: MakeClient, server: FakeISales
) -> None:
    arrived = asyncio.Event()
    server.on_request.append(lambda _: arrived.set())
    server.inject(Fault.hang(endpoint="queryOBSResultCode"))
    async with make_client(timeouts=Timeouts(total=30.0), clock=SystemClock()) as client:
        call = asyncio.ensure_future(client.obs_result_codes.page())
        try:
            await arrived.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            server.release()
        assert client._session.in_flight == 0
        assert client._session._transport._totals._armed == 0  # type: ignore[attr-defined]


# -- the signing key is made once a second, and a new second is never missed ------------------------------


async def test_a_request_in_a_new_second_is_signed_with_that_second(
    make_client: MakeClient, server: FakeISales
) -> None:
    """The key is kept until its second ends by the clock, not for a second from when it
    was made: 0.5 s after a request at hh:mm:ss.6, the next one is signed at hh:mm:ss+1."""
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=600_000)  # the fake checks the skew
    clock = FakeClock(wall_start=start)
    async with make_client(clock=clock) as client:
        await client.business_results.write_back(1, "B01")
        await client.business_results.write_back(2, "B01")  # the same second: the same key
        clock.advance(0.5)
        await client.business_results.write_back(3, "B01")
    stamps = [request.authorization.split("/")[2] for request in server.requests_to(WB)]
    first, second = (f"{when:%Y-%m-%dT%H:%M:%S}Z" for when in (start, start + dt.timedelta(seconds=1)))
    assert stamps == [first, first, second]
