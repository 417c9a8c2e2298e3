"""Several real worker processes, one tenant: the flow limits hold across them on a real Redis.

Each worker is a fresh interpreter (``multiprocessing`` spawn) with its own client; the
fake server runs in a process of its own and tells its evidence over its test endpoint.
Real time throughout: every wait is bounded by a generous timeout, no duration is asserted.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from isales_async import ISalesClient, RedisLimits
from isales_async._shared_limits import TenantKeys
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, Fault, fake_server_process, fetch_state

from .limits_worker import LIMIT, hammer

WORKERS = 4
CALLS = 40
SPAWN = mp.get_context("spawn")


@contextmanager
def workers(base_url: str, redis_url: str | None, *, count: int = WORKERS, calls: int = CALLS) -> Iterator[list[int]]:
    """``count`` worker processes started together; yields the calls each made, once all are done."""
    go = SPAWN.Event()
    results: Any = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=hammer, args=(base_url, redis_url, "tenant-1", calls, go, results), daemon=True)
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    try:
        go.set()
        done = [results.get(timeout=120) for _ in processes]
        yield done
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(10)


def test_four_workers_sharing_one_tenant_hold_the_callresult_limit(redis_url: str) -> None:
    with fake_server_process(latency=0.05) as base_url, workers(base_url, redis_url) as done:
        state = fetch_state(base_url)
    assert done == [CALLS] * WORKERS
    assert 1 < state["peak_in_flight"]["callresult"] <= LIMIT.concurrency


def test_four_workers_each_with_its_own_limit_exceed_the_tenants() -> None:
    # The same run without the shared backend: why the test above needs it.
    with fake_server_process(latency=0.05) as base_url, workers(base_url, None) as done:
        state = fetch_state(base_url)
    assert done == [CALLS] * WORKERS
    assert LIMIT.concurrency < state["peak_in_flight"]["callresult"] <= WORKERS * LIMIT.concurrency


def test_one_workers_retry_after_pauses_all_four(redis_url: str) -> None:
    retry_after = 3.0
    # The 31st callresult request (the 4 warm-up calls included) is answered 429.
    faults = [
        Fault.slow(0.0, endpoint="callresult", times=30),
        Fault.status_code(429, retry_after=f"{retry_after:g}", endpoint="callresult"),
    ]
    with (
        cool_down_seen(redis_url) as seen,
        fake_server_process(latency=0.02, faults=faults) as base_url,
        workers(base_url, redis_url) as done,
    ):
        arrivals = fetch_state(base_url)["received_at"]["callresult"]
    assert done == [CALLS] * WORKERS
    assert seen, "the cool-down was never published"
    rate_limited_at, published_by = arrivals[30], seen[0]
    during = [t for t in arrivals if published_by < t < rate_limited_at + retry_after]
    # Once the pause is published nothing is admitted: what still arrives was admitted
    # before, and each of those holds one of the limit's leases.
    assert len(during) <= LIMIT.concurrency
    assert any(t >= rate_limited_at + retry_after for t in arrivals)  # and the work went on after it


@contextmanager
def cool_down_seen(redis_url: str) -> Iterator[list[float]]:
    """Watches the tenant's cool-down key; yields a list that gets the moment
    (``time.monotonic()``) it was first seen, by which it was surely published."""
    seen: list[float] = []
    stop = threading.Event()
    probe = redis.Redis.from_url(redis_url)
    key = TenantKeys("tenant-1").cool_down

    def watch() -> None:
        while not stop.is_set() and not seen:
            if probe.exists(key):
                seen.append(time.monotonic())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(10)
        probe.close()


def test_a_worker_killed_holding_leases_frees_its_slots_within_the_lease_time(redis_url: str) -> None:
    lease_seconds = 2.0
    leases_key = TenantKeys("tenant-1").leases("callresult")
    probe = redis.Redis.from_url(redis_url)
    go = SPAWN.Event()
    results: Any = SPAWN.Queue()
    # After the warm-up call, the worker's whole limit hangs in flight.
    faults = [Fault.slow(0.0, endpoint="callresult"), Fault.hang(endpoint="callresult", times=LIMIT.concurrency)]
    with fake_server_process(faults=faults) as base_url:
        victim = SPAWN.Process(
            target=hammer,
            args=(base_url, redis_url, "tenant-1", LIMIT.concurrency, go, results, lease_seconds),
            daemon=True,
        )
        victim.start()
        try:
            go.set()
            _until(lambda: probe.zcard(leases_key) == LIMIT.concurrency, "the worker holds the whole limit")
            _until(lambda: fetch_state(base_url)["requests"] == 1 + LIMIT.concurrency, "its requests hang in flight")
        finally:
            os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
            victim.join(10)
        seconds, micros = probe.time()
        killed_at_ms = seconds * 1000 + micros // 1000
        held = probe.zrange(leases_key, 0, -1, withscores=True)
        expiries = [score for _, score in held]
        assert len(expiries) == LIMIT.concurrency
        assert all(expiry <= killed_at_ms + lease_seconds * 1000 for expiry in expiries)  # within the lease time
        asyncio.run(asyncio.wait_for(_one_call(base_url, redis_url), timeout=60))
        left = set(probe.zrange(leases_key, 0, -1))
    assert left <= {lease for lease, _ in held}  # the call gave its own lease back
    probe.close()


def _until(condition: Any, what: str, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"not reached in {timeout:g}s: {what}"
        time.sleep(0.02)


async def _one_call(base_url: str, redis_url: str) -> None:
    """A callresult query of another worker of the tenant: it waits for a slot, and gets one."""
    limits = RedisLimits(redis_url, tenant="tenant-1")
    async with ISalesClient(
        base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, limits=limits, route_limits={"callresult": LIMIT}
    ) as client:
        await client.call_results.page("1001", page_size=1)
