"""Retry-After end to end: no hint ever hangs a client, and no call waits past its deadline.

Every test runs on a FakeClock, whose ``sleeps`` is the complete record of what the client
waited for: a hang would show there as a huge sleep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import anyio
import pytest

from isales_async import (
    ClientClosedError,
    DeadlineExceededError,
    GaveUp,
    RateLimitedError,
    RetryPolicy,
    ServerError,
)
from isales_async.testing import FakeClock, FakeISales, Fault

from .conftest import MakeClient

OBS = "queryOBSResultCode"
WB = "callBusiResult"
WALL = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)  # within the fake's allowed clock skew
IN_2099 = "Thu, 01 Jan 2099 00:00:00 GMT"
IN_1999 = "Fri, 01 Jan 1999 00:00:00 GMT"
# Retry-After values above the 60 s cap, and the value the client reads from each.
HUGE = {
    "1000000000": 1e9,
    "inf": math.inf,
    IN_2099: (dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc) - WALL).total_seconds(),
}
MEANINGLESS = ["nan", "-5", "abc", IN_1999]
FIRST_BACKOFF = RetryPolicy().initial_delay


@pytest.mark.parametrize("value", list(HUGE))
async def test_a_huge_retry_after_is_no_pause_a_read_retries_on_its_own_backoff(
    make_client: MakeClient, server: FakeISales, value: str
) -> None:
    clock = FakeClock(wall_start=WALL)
    server.inject(Fault.status_code(429, retry_after=value, endpoint=OBS))
    async with make_client(clock=clock) as client:
        first = await client.obs_result_codes.page(page_size=5)
        second = await client.obs_result_codes.page(page_num=2, page_size=5)  # not paused either
    assert [len(first.items), len(second.items)] == [5, 5]
    assert len(server.requests) == 3
    assert len(clock.sleeps) == 1
    assert 0.0 <= clock.sleeps[0] <= FIRST_BACKOFF


@pytest.mark.parametrize("value", list(HUGE))
async def test_a_huge_retry_after_fails_a_write_at_once_with_the_servers_value(
    make_client: MakeClient, server: FakeISales, value: str
) -> None:
    clock = FakeClock(wall_start=WALL)
    server.inject(Fault.status_code(429, retry_after=value, endpoint=WB))
    async with make_client(clock=clock) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.business_results.write_back(5, "B01")
        await client.obs_result_codes.page(page_size=1)  # the client is not paused
    assert info.value.retry_after == HUGE[value]
    assert len(server.requests_to(WB)) == 1
    assert server.applied_counts() == {}
    assert clock.sleeps == []


@pytest.mark.parametrize("value", MEANINGLESS)
async def test_a_meaningless_retry_after_is_ignored(make_client: MakeClient, server: FakeISales, value: str) -> None:
    clock = FakeClock(wall_start=WALL)
    server.inject(
        Fault.status_code(429, retry_after=value, endpoint=OBS),
        Fault.status_code(429, retry_after=value, endpoint=WB),
    )
    async with make_client(clock=clock) as client:
        await client.obs_result_codes.page(page_size=1)
        await client.business_results.write_back(6, "B01")  # a 429 write is retried: it was not processed
    assert server.applied_counts() == {"6": 1}
    assert len(server.requests) == 4
    assert len(clock.sleeps) == 2
    assert all(0.0 <= s <= FIRST_BACKOFF for s in clock.sleeps)


@pytest.mark.parametrize("value", MEANINGLESS)
async def test_a_meaningless_retry_after_is_not_reported_as_a_hint(
    make_client: MakeClient, server: FakeISales, value: str
) -> None:
    server.inject(Fault.status_code(429, retry_after=value, endpoint=WB, times=4))
    async with make_client(clock=FakeClock(wall_start=WALL)) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.business_results.write_back(6, "B01")
    assert info.value.retry_after is None
    assert len(server.requests_to(WB)) == 4
    assert server.applied_counts() == {}


async def test_the_cap_is_60_seconds_inclusive(make_client: MakeClient, server: FakeISales) -> None:
    clock = FakeClock()
    async with make_client(clock=clock, retry=RetryPolicy(deadline=None)) as client:
        server.inject(Fault.status_code(429, retry_after="60", endpoint=OBS))
        await client.obs_result_codes.page(page_size=1)
        server.inject(Fault.status_code(503, retry_after="61", endpoint=OBS))
        await client.obs_result_codes.page(page_size=1)
    assert clock.sleeps[0] == 60.0  # honoured and shared
    assert len(clock.sleeps) == 2
    assert 0.0 <= clock.sleeps[1] <= FIRST_BACKOFF  # 61 s is above the cap: the read's own backoff


async def test_a_503_write_with_a_huge_retry_after_gives_up_unprocessed(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock()
    server.inject(Fault.status_code(503, retry_after="3600", endpoint=WB))
    async with make_client(clock=clock) as client:
        with pytest.raises(ServerError) as info:
            await client.business_results.write_back(8, "B01")
    assert (info.value.status, info.value.retry_after) == (503, 3600.0)
    assert server.applied_counts() == {}
    assert clock.sleeps == []


async def test_a_call_whose_deadline_falls_inside_the_cool_down_gives_up_unsent(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock()
    events: list[object] = []
    server.inject(Fault.status_code(429, retry_after="30", endpoint=OBS))
    async with make_client(clock=clock, retry=RetryPolicy(deadline=10.0), hooks=[events.append]) as client:
        with pytest.raises(RateLimitedError):
            await client.obs_result_codes.page()  # its own 30 s wait would pass its deadline
        assert client._session._retry_state.cool_down_wait(clock.monotonic()) == 30.0  # yet the pause is shared
        with pytest.raises(DeadlineExceededError) as write:
            await client.business_results.write_back(7, "B01")
        with pytest.raises(DeadlineExceededError) as read:
            await client.obs_result_codes.page()
        assert len(server.requests) == 1
        assert clock.sleeps == []  # nobody slept, not even part of the pause
        page = await client.with_options(retry=RetryPolicy(deadline=30.0)).obs_result_codes.page(page_size=1)
    assert (write.value.endpoint, write.value.wait) == (WB, 30.0)
    assert read.value.wait == 30.0
    assert "not sent" in str(write.value)
    assert server.applied_counts() == {}
    assert clock.sleeps == [30.0]  # a call whose deadline leaves room waits exactly the pause
    assert len(page.items) == 1
    assert [e.reason for e in events if isinstance(e, GaveUp)] == [
        "the 10s deadline leaves no room for a 30.00s wait",
        "deadline",
        "deadline",
    ]


async def test_a_call_whose_deadline_falls_inside_the_route_spacing_gives_up_unsent(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock()
    async with make_client(clock=clock, retry=RetryPolicy(deadline=0.5)) as client:
        results = await asyncio.gather(
            *(client.call_results.page("1001", page_num=n, page_size=10) for n in range(1, 12)),
            return_exceptions=True,
        )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], DeadlineExceededError)
    assert refused[0].wait == pytest.approx(1.001)  # ten starts at 0, the flow limit's 1 s, and a hair
    assert len(server.requests_to("callresult")) == 10
    assert clock.sleeps == []


async def test_a_retried_call_gives_up_when_a_pause_set_meanwhile_passes_its_deadline(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock(autojump=False)
    server.inject(
        Fault.status_code(429, retry_after="5", endpoint=OBS), Fault.status_code(429, retry_after="40", endpoint=WB)
    )
    async with make_client(clock=clock, retry=RetryPolicy(deadline=30.0)) as client:
        with anyio.fail_after(5):
            read = asyncio.ensure_future(client.obs_result_codes.page(page_size=1))
            write = asyncio.ensure_future(
                client.with_options(retry=RetryPolicy(deadline=None)).business_results.write_back(9, "B01")
            )
            await clock.wait_for_sleepers(2)  # the read waits 5 s, the write 40 s: the pause
            clock.advance(5.0)  # the read's retry finds 35 s of pause left, past its 30 s deadline
            with pytest.raises(DeadlineExceededError) as info:
                await read
            clock.advance(35.0)
            await write
    assert info.value.wait == 35.0
    assert isinstance(info.value.__cause__, RateLimitedError)
    assert info.value.__cause__.retry_after == 5.0
    assert clock.sleeps == [5.0, 40.0]
    assert len(server.requests) == 3
    assert server.applied_counts() == {"9": 1}


async def test_a_call_waiting_in_the_cool_down_when_the_client_closes_is_refused_typed(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock(autojump=False)
    server.inject(Fault.status_code(429, retry_after="1", endpoint=OBS))
    client = make_client(clock=clock)
    async with client:
        with anyio.fail_after(5):
            first = asyncio.ensure_future(client.obs_result_codes.page(page_size=1))
            await clock.wait_for_sleepers(1)
            second = asyncio.ensure_future(client.obs_result_codes.page(page_size=1))
            await clock.wait_for_sleepers(2)
    clock.advance(1.0)
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(r) for r in results] == [ClientClosedError, ClientClosedError]
    assert len(server.requests) == 1
