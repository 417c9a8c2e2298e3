"""Flow limits shared on Redis: the pure parts, the scripts on a real Redis, and clients in one process.

The tests with several processes are in ``test_shared_limits_processes.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from isales_async import (
    ClientOptions,
    DeadlineExceededError,
    ISalesClient,
    RedisLimits,
    RetryPolicy,
    RouteLimit,
    ValidationError,
)
from isales_async._retry import CoolDown
from isales_async._shared_limits import (
    ADMIT_SCRIPT,
    COOL_DOWN_SCRIPT,
    RENEW_SCRIPT,
    Admit,
    AdmitKind,
    Health,
    TenantKeys,
    busy_delay,
    check_tenant,
    read_admit,
    redacted_url,
    spacing_wait_ms,
)
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales, Fault

from .redis_server import RedisServer, running_redis

LIMIT = RouteLimit(concurrency=10, interval=0.05)


# -- the pure parts ------------------------------------------------------------------


def test_a_full_route_is_asked_again_after_a_doubling_delay_never_past_its_first_expiry() -> None:
    assert [busy_delay(n, 10.0) for n in (1, 2, 3, 6, 7, 50)] == [0.002, 0.004, 0.008, 0.064, 0.064, 0.064]
    assert busy_delay(3, 0.005) == 0.005
    assert busy_delay(1, 0.0) == 0.001
    assert busy_delay(0, 10.0) == 0.002


def test_the_spacing_wait_a_deadline_allows_is_in_whole_milliseconds() -> None:
    assert spacing_wait_ms(None) == -1
    assert spacing_wait_ms(1.2345) == 1234
    assert spacing_wait_ms(0.0) == 0


def test_the_admission_reply_reads_as_kind_seconds_and_a_lease_only_when_taken() -> None:
    assert read_admit([0, 250], "L1") == Admit(AdmitKind.ADMITTED, 0.25, "L1")
    assert read_admit([1, 3000], "L1") == Admit(AdmitKind.COOLING, 3.0)
    assert read_admit([2, 7], "L1") == Admit(AdmitKind.BUSY, 0.007)
    assert read_admit([3, 1500], "L1") == Admit(AdmitKind.LATE, 1.5)
    with pytest.raises(ValueError, match="admission script answered"):
        read_admit(b"OK", "L1")
    with pytest.raises(ValueError):
        read_admit([9, 0], "L1")


def test_after_a_failure_redis_is_probed_once_per_interval_and_an_outage_is_said_once() -> None:
    health = Health(retry_interval=5.0)
    assert health.may_ask(0.0) and not health.down
    assert health.failed(1.0) is True
    assert health.failed(1.5) is False  # the same outage: not said again
    assert not health.may_ask(6.4)
    assert health.may_ask(6.5)  # one probe
    assert not health.may_ask(6.6)  # the others keep to their own limits meanwhile
    assert health.answered() is True
    assert health.may_ask(6.7) and not health.down
    assert health.answered() is False
    assert health.failed(7.0) is True  # a new outage is said again


def test_a_redis_url_is_shown_without_its_password() -> None:
    assert redacted_url("redis://:hunter2@cache:6379/0") == "redis://***@cache:6379/0"
    assert redacted_url("rediss://user:hunter2@cache/1") == "rediss://***@cache/1"
    assert redacted_url("unix:///run/redis.sock?db=1&password=hunter2") == "unix:///run/redis.sock"
    assert redacted_url("redis://cache:6379") == "redis://cache:6379"


def test_tenant_keys_share_one_hash_tag_and_a_tenant_is_checked() -> None:
    keys = TenantKeys("vdn-1")
    assert keys.leases("callresult") == "isales:{vdn-1}:leases:callresult"
    assert keys.starts("callresult") == "isales:{vdn-1}:starts:callresult"
    assert keys.cool_down == "isales:{vdn-1}:cool-down"
    assert check_tenant("tenant", "a" * 100) == "a" * 100
    for bad in ("", "a b", "a{b}", "a" * 101, "é"):
        with pytest.raises(ValidationError, match="tenant"):
            check_tenant("tenant", bad)
    with pytest.raises(ValidationError, match="must be a string"):
        check_tenant("tenant", 1)


def test_a_cool_down_taken_is_told_to_its_listener_and_an_adopted_one_is_not() -> None:
    told: list[float] = []
    cool_down = CoolDown(listener=told.append)
    assert cool_down.pause(0.0, 2.0, cap=60.0)
    assert not cool_down.pause(0.0, 90.0, cap=60.0)  # above the cap: not a pause at all
    assert cool_down.pause(0.5, 1.0, cap=60.0)  # shorter than the pause under way: not told again
    assert cool_down.adopt(1.0, 5.0)  # learned from another process
    assert not cool_down.adopt(1.0, 1.0)
    assert told == [2.0]
    assert cool_down.wait(1.0) == 5.0


# -- the scripts, on a real Redis ---------------------------------------------------------


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _admit(
    client: redis.Redis, lease: str, *, limit: int = 3, interval_ms: int = 1000, max_wait: int = -1
) -> list[int]:
    keys = TenantKeys("t")
    reply = client.eval(
        ADMIT_SCRIPT, 3, keys.leases("r"), keys.starts("r"), keys.cool_down, lease, limit, interval_ms, 60_000, max_wait
    )
    return [int(x) for x in reply]  # type: ignore[union-attr]


def test_the_admission_script_grants_leases_up_to_the_limit_then_says_when_one_expires(sync_redis: redis.Redis) -> None:
    assert [_admit(sync_redis, f"L{n}")[0] for n in range(3)] == [0, 0, 0]
    kind, until_free = _admit(sync_redis, "L3")
    assert kind == AdmitKind.BUSY.value
    assert 59_000 < until_free <= 60_000
    assert sync_redis.zcard(TenantKeys("t").leases("r")) == 3
    sync_redis.zrem(TenantKeys("t").leases("r"), "L0")
    assert _admit(sync_redis, "L4")[0] == AdmitKind.ADMITTED.value


def test_expired_leases_are_dropped_before_counting(sync_redis: redis.Redis) -> None:
    leases = TenantKeys("t").leases("r")
    sync_redis.zadd(leases, {"dead-1": 1, "dead-2": 2, "dead-3": 3})  # expired in 1970
    assert _admit(sync_redis, "L1")[0] == AdmitKind.ADMITTED.value
    assert sync_redis.zrange(leases, 0, -1) == [b"L1"]


def test_at_most_limit_starts_fall_in_any_window_longer_than_the_interval(sync_redis: redis.Redis) -> None:
    starts_key = TenantKeys("t").starts("r")
    waits, starts = [], []
    for n in range(7):
        kind, wait = _admit(sync_redis, f"L{n}", limit=3, interval_ms=1000)
        assert kind == AdmitKind.ADMITTED.value
        sync_redis.zrem(TenantKeys("t").leases("r"), f"L{n}")  # finished: only the spacing binds
        waits.append(wait)
        starts.append(sync_redis.zscore(starts_key, f"L{n}"))
    assert sync_redis.zcard(starts_key) == 3  # only the last `limit` starts are kept
    assert waits[:3] == [0, 0, 0]
    assert all(wait > 0 for wait in waits[3:])
    assert all(starts[n + 3] - starts[n] > 1000 for n in range(4))
    assert starts[3] - starts[0] <= 1001  # and no later than needed


def test_a_spacing_wait_past_the_deadline_takes_nothing(sync_redis: redis.Redis) -> None:
    for n in range(3):
        _admit(sync_redis, f"L{n}", limit=3)
        sync_redis.zrem(TenantKeys("t").leases("r"), f"L{n}")
    kind, wait = _admit(sync_redis, "late", limit=3, max_wait=100)
    assert kind == AdmitKind.LATE.value
    assert 100 < wait <= 1001
    assert sync_redis.zscore(TenantKeys("t").leases("r"), "late") is None
    assert sync_redis.zscore(TenantKeys("t").starts("r"), "late") is None


def test_the_cool_down_pauses_admission_and_is_never_shortened(sync_redis: redis.Redis) -> None:
    cool = TenantKeys("t").cool_down
    assert sync_redis.eval(COOL_DOWN_SCRIPT, 1, cool, 5000) == 1
    assert sync_redis.eval(COOL_DOWN_SCRIPT, 1, cool, 1000) == 0
    assert 4000 < sync_redis.pttl(cool) <= 5000
    kind, left = _admit(sync_redis, "L1")
    assert kind == AdmitKind.COOLING.value
    assert 4000 < left <= 5000
    assert sync_redis.zcard(TenantKeys("t").leases("r")) == 0
    assert sync_redis.eval(COOL_DOWN_SCRIPT, 1, cool, 9000) == 1
    assert 8000 < sync_redis.pttl(cool) <= 9000


def test_renewing_extends_held_leases_and_never_revives_a_released_one(sync_redis: redis.Redis) -> None:
    leases = TenantKeys("t").leases("r")
    sync_redis.zadd(leases, {"held": 1, "long": 10**15})
    assert sync_redis.eval(RENEW_SCRIPT, 1, leases, 30_000, "held", "released", "long") == 1
    (now_s, now_us) = sync_redis.time()
    now_ms = now_s * 1000 + now_us // 1000
    assert now_ms < sync_redis.zscore(leases, "held") <= now_ms + 30_000  # type: ignore[operator]
    assert sync_redis.zscore(leases, "long") == 10**15  # never shortened
    assert sync_redis.zscore(leases, "released") is None


# -- options -----------------------------------------------------------------------------


def test_limits_must_be_a_shared_backend() -> None:
    with pytest.raises(ValidationError, match=r"limits.*RedisLimits"):
        ClientOptions(limits="redis://cache")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="limits"):
        ISalesClient("https://isales.test", ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, limits=object())  # type: ignore[arg-type]


def test_redis_limits_checks_its_arguments() -> None:
    with pytest.raises(ValidationError, match="tenant"):
        RedisLimits("redis://cache", tenant="two words")
    with pytest.raises(ValidationError, match="lease_seconds"):
        RedisLimits("redis://cache", tenant="t", lease_seconds=0)
    with pytest.raises(ValidationError, match="timeout"):
        RedisLimits("redis://cache", tenant="t", timeout=float("nan"))
    with pytest.raises(ValidationError, match=r"redis.*URL"):
        RedisLimits("http://cache", tenant="t")
    with pytest.raises(ValidationError, match=r"redis.*got int"):
        RedisLimits(6379, tenant="t")  # type: ignore[arg-type]


def test_a_password_in_the_url_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    limits = RedisLimits("redis://:hunter2@localhost:1/0", tenant="t")
    options = ClientOptions(limits=limits)
    assert "hunter2" not in repr(limits)
    assert "hunter2" not in repr(options)
    assert repr(limits) == "RedisLimits(redis://***@localhost:1/0, tenant='t', lease_seconds=30)"


def test_without_redis_installed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import isales_async

    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    assert isales_async.RedisLimits is RedisLimits  # importable without it
    with pytest.raises(ImportError, match=r"isales-async\[redis\]"):
        RedisLimits("redis://cache", tenant="t")


# -- clients in one process ------------------------------------------------------------------


def _client(fake: FakeISales, limits: RedisLimits | None, **options: object) -> ISalesClient:
    return ISalesClient(
        "https://isales.test",
        ak=DEFAULT_AK,
        sk=DEFAULT_SK,
        vdn_id=1,
        transport=fake.transport(),
        limits=limits,
        max_concurrency=50,
        route_limits={"callresult": LIMIT},
        **options,  # type: ignore[arg-type]
    )


async def _hammer(client: ISalesClient, calls: int) -> None:
    await asyncio.gather(*(client.call_results.page("1001", page_size=5) for _ in range(calls)))


async def test_two_clients_naming_one_tenant_share_its_route_limit(redis_url: str) -> None:
    fake = FakeISales(latency=0.02)
    async with (
        _client(fake, RedisLimits(redis_url, tenant="t")) as one,
        _client(fake, RedisLimits(redis_url, tenant="t")) as two,
    ):
        await asyncio.gather(_hammer(one, 40), _hammer(two, 40))
    assert 1 < fake.peak_in_flight("callresult") <= LIMIT.concurrency
    assert len(fake.requests_to("callresult")) == 80
    assert redis.Redis.from_url(redis_url).zcard(TenantKeys("t").leases("callresult")) == 0  # all given back


async def test_two_tenants_do_not_share_and_in_process_limits_stay_per_client(redis_url: str) -> None:
    fake = FakeISales(latency=0.02)
    async with (
        _client(fake, RedisLimits(redis_url, tenant="a")) as one,
        _client(fake, RedisLimits(redis_url, tenant="b")) as two,
    ):
        await asyncio.gather(_hammer(one, 40), _hammer(two, 40))
    assert LIMIT.concurrency < fake.peak_in_flight("callresult") <= 2 * LIMIT.concurrency


async def test_one_clients_retry_after_pauses_the_other(redis_url: str) -> None:
    fake = FakeISales()
    fake.inject(Fault.status_code(429, retry_after="1", endpoint="callresult"))
    probe = redis.asyncio.Redis.from_url(redis_url)
    cool_down = TenantKeys("t").cool_down
    async with (
        _client(fake, RedisLimits(redis_url, tenant="t")) as one,
        _client(fake, RedisLimits(redis_url, tenant="t")) as two,
    ):
        first = asyncio.ensure_future(one.call_results.page("1001", page_size=5))  # 429, paused, then retried
        for _ in range(500):  # bounded: until the pause is published
            if await probe.pttl(cool_down) > 0:
                break
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(two.call_results.page("1001", page_size=5))
        samples = 0
        while True:
            seen = len(fake.requests_to("callresult"))
            if await probe.pttl(cool_down) <= 0:
                break
            assert seen == 1  # the pause was still on when counted: nothing but the 429 reached the server
            samples += 1
            await asyncio.sleep(0.02)
        await asyncio.gather(first, second)
    await probe.aclose()
    assert samples > 0
    assert len(fake.requests_to("callresult")) == 3


async def test_a_cool_down_that_outlasts_the_deadline_is_refused_at_once(redis_url: str) -> None:
    fake = FakeISales()
    fake.inject(Fault.status_code(503, retry_after="30", endpoint="callresult"))
    quick = RetryPolicy(attempts=1, deadline=5.0)
    async with (
        _client(fake, RedisLimits(redis_url, tenant="t"), retry=quick) as one,
        _client(fake, RedisLimits(redis_url, tenant="t"), retry=quick) as two,
    ):
        with pytest.raises(Exception, match="503"):
            await one.call_results.page("1001", page_size=5)
        with pytest.raises(DeadlineExceededError, match="tenant's cool-down"):
            await two.call_results.page("1001", page_size=5)
    assert len(fake.requests_to("callresult")) == 1


async def test_a_route_without_a_limit_still_waits_for_the_tenants_cool_down(redis_url: str) -> None:
    fake = FakeISales()
    fake.inject(Fault.status_code(429, retry_after="30", endpoint="callresult"))
    quick = RetryPolicy(attempts=1, deadline=5.0)
    async with _client(fake, RedisLimits(redis_url, tenant="t"), retry=quick) as one:
        with pytest.raises(Exception, match="429"):
            await one.call_results.page("1001", page_size=5)
    async with _client(fake, RedisLimits(redis_url, tenant="t"), retry=quick) as fresh:
        with pytest.raises(DeadlineExceededError, match="tenant's cool-down"):
            await fresh.obs_result_codes.page()
    assert fake.requests_to("queryOBSResultCode") == []


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test alone, which it may stop."""
    with running_redis() as server:
        yield server


@pytest.fixture
async def watched(own_redis: RedisServer) -> AsyncIterator[tuple[RedisLimits, ISalesClient, FakeISales]]:
    fake = FakeISales(latency=0.01)
    limits = RedisLimits(own_redis.url, tenant="t", timeout=0.5, retry_interval=0.2)
    async with _client(fake, limits) as client:
        yield limits, client, fake


async def test_redis_stopped_mid_run_warns_once_and_calls_go_on_in_process(
    own_redis: RedisServer,
    watched: tuple[RedisLimits, ISalesClient, FakeISales],
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits, client, fake = watched
    await _hammer(client, 20)
    assert limits.available
    own_redis.stop()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, "isales_async"):
        warnings.simplefilter("always")
        await asyncio.wait_for(_hammer(client, 60), timeout=60)  # generous: it must not hang
        await asyncio.wait_for(_hammer(client, 60), timeout=60)
    said = [w for w in caught if "shared limits" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in caught]
    assert said[0].category is RuntimeWarning
    assert "keeps to its own flow limits" in str(said[0].message)
    assert [r.message for r in caplog.records].count(str(said[0].message)) == 1
    assert not limits.available
    assert len(fake.requests_to("callresult")) == 140
    assert 1 < fake.peak_in_flight("callresult") <= LIMIT.concurrency  # the process's own limit held


async def test_the_shared_limits_resume_when_redis_answers_again(
    own_redis: RedisServer,
    watched: tuple[RedisLimits, ISalesClient, FakeISales],
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits, client, _ = watched
    own_redis.stop()
    with pytest.warns(RuntimeWarning, match="shared limits"):
        await _hammer(client, 5)
    own_redis.start()
    with caplog.at_level(logging.WARNING, "isales_async"):
        for _ in range(200):  # bounded: a probe is due every 0.2 s
            await _hammer(client, 1)
            if limits.available:
                break
            await asyncio.sleep(0.05)
    assert limits.available
    assert any("answers again" in r.getMessage() for r in caplog.records)
    probe = redis.Redis.from_url(own_redis.url)
    assert probe.exists(TenantKeys("t").starts("callresult"))  # the attempts are admitted by Redis again
    probe.close()


async def test_a_redis_that_does_not_answer_is_given_up_within_the_timeout(own_redis: RedisServer) -> None:
    import os
    import signal

    fake = FakeISales()
    limits = RedisLimits(own_redis.url, tenant="t", timeout=0.3, retry_interval=60.0)
    async with _client(fake, limits) as client:
        await _hammer(client, 2)
        assert own_redis._process is not None
        pid = own_redis._process.pid
        os.kill(pid, signal.SIGSTOP)  # alive, listening, silent
        try:
            with pytest.warns(RuntimeWarning, match="TimeoutError"):
                await asyncio.wait_for(_hammer(client, 20), timeout=30)
        finally:
            os.kill(pid, signal.SIGCONT)
    assert len(fake.requests_to("callresult")) == 22


async def test_an_unreachable_redis_from_the_start_leaves_the_in_process_limits(tmp_path: object) -> None:
    fake = FakeISales(latency=0.01)
    limits = RedisLimits("unix:///nonexistent/redis.sock", tenant="t")
    async with _client(fake, limits) as client:
        with pytest.warns(RuntimeWarning, match="unix:///nonexistent/redis.sock"):
            await asyncio.wait_for(_hammer(client, 30), timeout=60)
    assert 1 < fake.peak_in_flight("callresult") <= LIMIT.concurrency


def test_a_client_reopened_in_another_event_loop_shares_again(redis_url: str) -> None:
    fake = FakeISales()
    limits = RedisLimits(redis_url, tenant="t")
    client = _client(fake, limits)

    async def one_batch() -> None:
        async with client:
            await _hammer(client, 3)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning, no unclosed connection
        asyncio.run(one_batch())
        asyncio.run(one_batch())
    assert limits.available
    assert len(fake.requests_to("callresult")) == 6


# -- the fake's evidence -----------------------------------------------------------------


async def test_the_fake_records_the_peak_in_flight_of_each_route() -> None:
    fake = FakeISales()
    fake.inject(Fault.hang(endpoint="callresult", times=3))
    async with _client(fake, None) as client:
        hung = [asyncio.ensure_future(client.call_results.page("1001", page_size=5)) for _ in range(3)]
        for _ in range(500):  # bounded: until the three hang in the fake
            if fake.in_flight == 3:
                break
            await asyncio.sleep(0.01)
        await client.obs_result_codes.page()
        assert (fake.peak_in_flight("callresult"), fake.peak_in_flight("queryOBSResultCode")) == (3, 1)
        fake.release()
        await asyncio.gather(*hung)
        await client.call_results.page("1001", page_size=5)
    assert fake.peak_in_flight("callresult") == 3
    assert fake.peak_in_flight("callresultdetail") == 0
    state = fake.state()
    assert state["peak_in_flight"] == {"callresult": 3, "queryOBSResultCode": 1}
    assert len(state["received_at"]["callresult"]) == 4
    assert state["received_at"]["callresult"] == sorted(state["received_at"]["callresult"])
