"""The writeback hot path keeps its guarantees with fewer objects a call: one alarm watches
every call's deadline, and a batch stops its unsent records without a cancel scope each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from isales_async import OutcomeUnknownError, RetryPolicy
from isales_async.testing import FakeClock, FakeISales, Fault

from .conftest import MakeClient

WB = "callBusiResult"


class CountingClock(FakeClock):
    """A fake clock that counts the alarms set on it."""

    def __init__(self, **options: bool) -> None:
        super().__init__(**options)
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
