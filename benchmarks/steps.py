"""The benchmark steps ``python -m benchmarks`` runs, each in an interpreter of its own.

All figures that matter are ratios measured in the same run on the same machine:
absolute times on a shared machine are noise. Each step takes JSON-able arguments and
returns a JSON-able dict (see :mod:`benchmarks.harness`). In the A/B steps the rounds
alternate which side goes first (:func:`~benchmarks.harness.alternated`), the garbage of
one side is collected before the other runs, and every ratio is reported with its
per-round values and spread (:func:`~benchmarks.harness.spread`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import cProfile
import datetime as dt
import gc
import io
import pstats
import statistics
import tempfile
import time
import timeit
import tracemalloc
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.harness import Meter, alternated, spread
from isales_async import BusinessResult, Definitions, ISalesClient, ObsResultCode, Writeback, sign
from isales_async._endpoints import ENDPOINTS
from isales_async._envelope import decipher
from isales_async._signing import format_timestamp
from isales_async.batch._engine import _Batch
from isales_async.batch._journal import Journal
from isales_async.batch._writeback import prepare
from isales_async.batch._writer import JournalWriter
from isales_async.resources._base import structure_list
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, fake_server_process

OBS_PATH = "/rest/isales/v1/openapi/campaigns/1/queryOBSResultCode"
warnings.simplefilter("ignore")  # the loopback fake speaks plain http


def server_process(*, precise_timers: bool | None = None, **options: Any) -> Any:
    """The fake server in its own process; one with a latency on precise timers unless told
    otherwise, so that the latency is the one named (see ``fake_server_process``)."""
    if precise_timers is None:
        precise_timers = options.get("latency", 0) > 0
    return fake_server_process(precise_timers=precise_timers, **options)


def client(base_url: str, concurrency: int = 10) -> ISalesClient:
    return ISalesClient(base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, max_concurrency=concurrency)


def page_query(n: int) -> list[tuple[str, str]]:
    return [("pageSize", "50"), ("pageNum", str(n % 2 + 1))]


async def run_concurrently(count: int, concurrency: int, one: Any) -> float:
    """Seconds to run ``one(i)`` for i in range(count), ``concurrency`` at a time."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


# -- 1. throughput ----------------------------------------------------------------------


async def ours(base_url: str, count: int, warmup: int = 0) -> float:
    async with client(base_url) as c:

        async def one(i: int) -> None:
            page = await c.obs_result_codes.page(page_num=i % 2 + 1, page_size=50)
            assert len(page.items) == 50

        await run_concurrently(max(warmup, 10), 10, one)  # the pool, the caches, the hooks: not measured
        return await run_concurrently(count, 10, one)


def signed_headers(host: str, method: str, path: str, query: list[tuple[str, str]], body: str) -> dict[str, str]:
    """The headers of one request signed now: what the raw baselines send."""
    stamp = format_timestamp(dt.datetime.now(dt.timezone.utc))
    auth = sign(
        method=method, path=path, query=query, host=host, body=body, ak=DEFAULT_AK, sk=DEFAULT_SK, timestamp=stamp
    ).authorization
    return {"Authorization": auth, "Host": host, "Content-Type": "application/json; charset=UTF-8"}


async def raw_aiohttp(base_url: str, count: int, warmup: int = 0) -> float:
    """The physical limit of the stack: the same requests, signed once up front, body unread beyond bytes."""
    host = base_url.removeprefix("http://")
    prepared = [
        (
            f"{base_url}{OBS_PATH}?pageSize=50&pageNum={n % 2 + 1}",
            signed_headers(host, "GET", OBS_PATH, page_query(n), ""),
        )
        for n in range(2)
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as session:

        async def one(i: int) -> None:
            url, headers = prepared[i % 2]
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == 200

        await run_concurrently(max(warmup, 10), 10, one)
        return await run_concurrently(count, 10, one)


def thread_pool(base_url: str, count: int) -> float:
    """The vendor SDK core's approach: requests in a ThreadPoolExecutor(8), signed and parsed per call."""
    import requests

    host = base_url.removeprefix("http://")
    with requests.Session() as session:  # closed, so its sockets do not linger into the next round
        session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8))

        def one(i: int) -> None:
            query = page_query(i)
            stamp = format_timestamp(dt.datetime.now(dt.timezone.utc))
            auth = sign(
                method="GET",
                path=OBS_PATH,
                query=query,
                host=host,
                body="",
                ak=DEFAULT_AK,
                sk=DEFAULT_SK,
                timestamp=stamp,
            ).authorization
            response = session.get(
                f"{base_url}{OBS_PATH}?pageSize=50&pageNum={i % 2 + 1}",
                headers={"Authorization": auth, "Host": host, "Content-Type": "application/json; charset=UTF-8"},
            )
            data = response.json()
            assert len(data["obsCodes"]) == 50

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(count)))
        return time.perf_counter() - started


def throughput(count: int, latency: float = 0.0, repetitions: int = 5) -> dict[str, Any]:
    """Rounds of raw aiohttp and ours (which goes first alternates), then the thread pool,
    each after its own warm-up and a garbage collection; the ratios are of the rounds' own
    rates, so a busy spell on the machine disturbs the two sides of a ratio alike."""
    warmup = max(10, count // 10)
    sides = {"raw_aiohttp": raw_aiohttp, "isales_async": ours}
    times: dict[str, list[float]] = {"isales_async": [], "raw_aiohttp": [], "requests_threads": []}
    cpu: dict[str, list[float]] = {"isales_async": [], "raw_aiohttp": []}
    first, others = [], []
    with server_process(latency=latency) as base_url:
        for repetition in range(repetitions):
            meter = Meter()
            order = alternated(repetition, tuple(sides))
            first.append(order[0])
            for name in order:
                gc.collect()
                started = time.process_time()
                times[name].append(asyncio.run(sides[name](base_url, count, warmup)))
                cpu[name].append((time.process_time() - started) / (count + warmup))
            gc.collect()
            times["requests_threads"].append(thread_pool(base_url, count))
            others.append(meter.read()["cores_busy_by_others"])
    rates = {name: [count / seconds for seconds in values] for name, values in times.items()}
    vs_raw = [a / b for a, b in zip(rates["isales_async"], rates["raw_aiohttp"], strict=True)]
    vs_threads = [a / b for a, b in zip(rates["isales_async"], rates["requests_threads"], strict=True)]
    return {
        "requests": count,
        "warmup_requests": warmup,
        "repetitions": repetitions,
        "server_latency_s": latency,
        "first_by_round": first,
        "cores_busy_by_others_by_round": others,
        "requests_per_second": {k: round(statistics.median(v)) for k, v in rates.items()},
        "ratio_vs_raw_aiohttp": spread(vs_raw),
        "ratio_vs_requests_threads": spread(vs_threads, 2),
        # The client process's CPU a request (warm-up and setup included): what bounds it at zero latency.
        "client_cpu_us_per_request": {k: round(statistics.median(v) * 1e6, 1) for k, v in cpu.items()},
    }


# -- 2. where the time goes ------------------------------------------------------------------


def micro() -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    stamp = format_timestamp(now)
    body = orjson.dumps({"busiResult": "B01", "subStatus": "B01-2", "workNo": "2033"}).decode()
    page = orjson.dumps(
        {
            "resultCode": "0200000",
            "returnCode": "0200000",
            "totalCount": 120,
            "obsCodes": [{"obsCode": f"{i:05d}", "obsCodeDesc": "The switch is busy."} for i in range(50)],
        }
    )
    parsed = orjson.loads(page)["obsCodes"]

    def us(fn: Any, number: int) -> float:
        return round(min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6, 2)

    return {
        "sign_get_us": us(
            lambda: sign(
                method="GET",
                path=OBS_PATH,
                query=page_query(1),
                host="127.0.0.1:1",
                body="",
                ak="a",
                sk="s",
                timestamp=stamp,
            ),
            20000,
        ),
        "sign_post_us": us(
            lambda: sign(
                method="POST", path=OBS_PATH, query=[], host="127.0.0.1:1", body=body, ak="a", sk="s", timestamp=stamp
            ),
            20000,
        ),
        "envelope_page_of_50_us": us(lambda: decipher(ENDPOINTS["queryOBSResultCode"], 200, {}, page, now), 5000),
        "structure_page_of_50_us": us(lambda: structure_list(parsed, ObsResultCode, "queryOBSResultCode"), 2000),
    }


def profile(count: int) -> dict[str, Any]:
    """The hottest functions of the client's hot path (cumulative), from cProfile."""
    with server_process() as base_url:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(ours(base_url, count))
        profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    return {"requests": count, "top_by_tottime": [line for line in text.getvalue().splitlines() if line.strip()][-19:]}


# -- 3. pagination -------------------------------------------------------------------------


def pagination(pages: int, latency: float, repetitions: int = 3, precise_timers: bool = True) -> dict[str, Any]:
    """Iterating ``pages`` pages at ``latency`` a page, by prefetch: ``repetitions`` rounds,
    each prefetch once a round (the order rotating from round to round), on a fresh client
    after one unmeasured page. A speedup is a round's sequential time over its prefetched one.

    ``precise_timers=False`` serves on the default loop, whose timers wake on whole
    milliseconds: the answers of a prefetched round then wake together, and the client
    handles them one after another instead of as they come."""
    prefetches = (1, 2, 4, 8)
    seconds: dict[int, list[float]] = {prefetch: [] for prefetch in prefetches}
    with server_process(obs_code_count=pages * 50, latency=latency, precise_timers=precise_timers) as base_url:

        async def run(prefetch: int) -> float:
            async with client(base_url) as c:
                await c.obs_result_codes.page(page_size=50)  # the pool: not measured
                started = time.perf_counter()
                n = sum([1 async for _ in c.obs_result_codes.iter(page_size=50, prefetch=prefetch)])
                assert n == pages * 50
                return time.perf_counter() - started

        first, others = [], []
        for repetition in range(repetitions):
            meter = Meter()
            order = alternated(repetition, prefetches)
            first.append(order[0])
            for prefetch in order:
                gc.collect()
                seconds[prefetch].append(asyncio.run(run(prefetch)))
            others.append(meter.read()["cores_busy_by_others"])
    results = {}
    for prefetch, values in seconds.items():
        ideal = latency * (1 + (pages - 1) / prefetch)
        results[prefetch] = {
            "seconds": round(statistics.median(values), 3),
            "fraction_of_ideal": spread([ideal / v for v in values]),
            "speedup": spread([base / v for base, v in zip(seconds[1], values, strict=True)], 2),
        }
    return {
        "pages": pages,
        "latency_s": latency,
        "server_timers": "select (microseconds)" if precise_timers else "default loop (whole milliseconds)",
        "repetitions": repetitions,
        "first_prefetch_by_round": first,
        "cores_busy_by_others_by_round": others,
        "by_prefetch": results,
    }


# -- 4. batch writeback ----------------------------------------------------------------------


def batch(records: int, latency: float, concurrencies: Sequence[int], repetitions: int = 1) -> dict[str, Any]:
    """``records`` writebacks at ``latency`` a request against the ideal time at each
    concurrency; ``repetitions`` rounds, the order of the concurrencies rotating."""
    fractions: dict[int, list[float]] = {concurrency: [] for concurrency in concurrencies}
    seconds: dict[int, list[float]] = {concurrency: [] for concurrency in concurrencies}
    with server_process(latency=latency, data_id_count=records) as base_url:

        async def run(concurrency: int) -> float:
            async with client(base_url, concurrency) as c:
                items = (Writeback(i, "B01") for i in range(1, records + 1))
                report = await c.business_results.write_back_many(items, concurrency=concurrency)
                assert len(report.succeeded) == records
                return report.elapsed

        others = []
        for repetition in range(repetitions):
            meter = Meter()
            for concurrency in alternated(repetition, tuple(concurrencies)):
                gc.collect()
                elapsed = asyncio.run(run(concurrency))
                seconds[concurrency].append(elapsed)
                fractions[concurrency].append(records * latency / concurrency / elapsed)
            others.append(meter.read()["cores_busy_by_others"])
    out = {
        concurrency: {"seconds": round(statistics.median(seconds[concurrency]), 2), "fraction_of_ideal": spread(values)}
        for concurrency, values in fractions.items()
    }
    return {
        "records": records,
        "latency_s": latency,
        "repetitions": repetitions,
        "cores_busy_by_others_by_round": others,
        "by_concurrency": out,
    }


WRITE_PATH = "/rest/isales/v1/openapi/campaigns/1/callBusiResult/{}"


def writebacks(first: int, count: int) -> Any:
    return (Writeback(i, "B01") for i in range(first, first + count))


async def ours_write_back(
    base_url: str, records: int, concurrency: int, journal: Path | None = None, *, recorded: bool = True
) -> float:
    """Seconds for ``write_back_many`` of ``records`` plain writebacks, after a warm-up batch
    (``recorded=False``: the journal stores nothing, so its report lists no success)."""
    warmup = max(concurrency, records // 10)
    async with client(base_url, concurrency) as c:
        await c.business_results.write_back_many(writebacks(1, warmup), concurrency=concurrency)
        started = time.perf_counter()
        report = await c.business_results.write_back_many(
            writebacks(warmup + 1, records), concurrency=concurrency, journal=journal
        )
        seconds = time.perf_counter() - started
    assert len(report.succeeded) == (records if recorded else 0), report.summary()
    assert not (report.failed or report.unknown or report.not_sent), report.summary()
    return seconds


async def raw_write_back(base_url: str, records: int, concurrency: int) -> float:
    """The raw loop a batch competes with: each POST signed as it goes, its body encoded, the
    answer's envelope read; no journal, no outcomes, no retries."""
    host = base_url.removeprefix("http://")
    warmup = max(concurrency, records // 10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            path = WRITE_PATH.format(i + 1)
            body = orjson.dumps({"busiResult": "B01"})
            headers = signed_headers(host, "POST", path, [], body.decode())
            async with session.post(f"{base_url}{path}", data=body, headers=headers) as response:
                answer = orjson.loads(await response.read())
                assert response.status == 200 and answer["resultCode"] == "0200000", answer

        await run_concurrently(warmup, concurrency, one)
        started = time.perf_counter()
        queue = iter(range(warmup, warmup + records))

        async def worker() -> None:
            for i in queue:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def write_back_vs_raw(records: int, concurrencies: Sequence[int], repetitions: int) -> dict[str, Any]:
    """``write_back_many`` against a raw signed POST loop, zero server latency (the client's
    CPU is the limit): ``repetitions`` rounds at each concurrency, which side goes first
    alternating; the ratio is each round's raw time over ours (higher is faster)."""
    sides = ("raw_signed_post", "isales_async")
    out: dict[str, Any] = {}
    for concurrency in concurrencies:
        needed = (records + max(concurrency, records // 10)) * repetitions * 2
        with server_process(data_id_count=needed) as base_url:
            run = {"raw_signed_post": raw_write_back, "isales_async": ours_write_back}
            seconds: dict[str, list[float]] = {side: [] for side in sides}
            first, others = [], []
            for repetition in range(repetitions):
                meter = Meter()
                order = alternated(repetition, sides)
                first.append(order[0])
                for side in order:
                    gc.collect()
                    seconds[side].append(asyncio.run(run[side](base_url, records, concurrency)))
                others.append(meter.read()["cores_busy_by_others"])
        ratios = [raw / our for raw, our in zip(seconds["raw_signed_post"], seconds["isales_async"], strict=True)]
        out[str(concurrency)] = {
            "first_by_round": first,
            "cores_busy_by_others_by_round": others,
            "records_per_second": {
                side: round(statistics.median(records / v for v in seconds[side])) for side in sides
            },
            "ratio_vs_raw": spread(ratios),
        }
    return {"records": records, "repetitions": repetitions, "server_latency_s": 0.0, "by_concurrency": out}


#: The sides of :func:`journal_cost`: no journal, a journal, and a journal whose writes are
#: dropped in its thread (reads still run): the bookkeeping and the hand-overs to the
#: thread, which is the least any store behind this design can cost.
JOURNAL_SIDES = ("unjournaled", "journaled", "unstored")


def journal_cost(records: int, concurrency: int, repetitions: int, latency: float = 0.0) -> dict[str, Any]:
    """The same batch with a journal, without one, and with the journal's writes unstored
    (the order rotating from round to round), at ``latency`` a request; the client
    process's CPU a record in each, and the journal thread's, so what each part adds is visible."""
    needed = (records + max(concurrency, records // 10)) * repetitions * len(JOURNAL_SIDES)
    thread_cpu: list[float] = []
    serve = JournalWriter._serve

    def timed_serve(writer: JournalWriter[Any]) -> None:
        started = time.thread_time()
        try:
            serve(writer)
        finally:
            thread_cpu.append(time.thread_time() - started)

    JournalWriter._serve = timed_serve  # type: ignore[method-assign,assignment]
    apply = Journal.apply
    with server_process(data_id_count=needed, latency=latency) as base_url, tempfile.TemporaryDirectory() as tmp:

        def run(side: str, n: int) -> tuple[float, float, float]:
            Journal.apply = _unstored if side == "unstored" else apply  # type: ignore[method-assign,assignment]
            journal = None if side == "unjournaled" else Path(tmp) / f"{side}{n}.sqlite"
            thread_cpu.clear()
            gc.collect()
            cpu = time.process_time()
            seconds = asyncio.run(ours_write_back(base_url, records, concurrency, journal, recorded=side != "unstored"))
            return records / seconds, (time.process_time() - cpu) / records, sum(thread_cpu) / records

        rates: dict[str, list[float]] = {side: [] for side in JOURNAL_SIDES}
        cpu: dict[str, list[float]] = {side: [] for side in JOURNAL_SIDES}
        thread: dict[str, list[float]] = {side: [] for side in JOURNAL_SIDES}
        first, others = [], []
        for repetition in range(repetitions):
            meter = Meter()
            order = alternated(repetition, JOURNAL_SIDES)
            first.append(order[0])
            for side in order:
                rate, cpu_per_record, thread_per_record = run(side, repetition)
                rates[side].append(rate)
                cpu[side].append(cpu_per_record)
                thread[side].append(thread_per_record)
            others.append(meter.read()["cores_busy_by_others"])
    Journal.apply, JournalWriter._serve = apply, serve  # type: ignore[method-assign]
    base = rates["unjournaled"]
    return {
        "records": records,
        "concurrency": concurrency,
        "server_latency_s": latency,
        "repetitions": repetitions,
        "first_by_round": first,
        "cores_busy_by_others_by_round": others,
        "records_per_second": {side: round(statistics.median(rates[side])) for side in JOURNAL_SIDES},
        "ratio_journaled_over_unjournaled": spread([a / b for a, b in zip(rates["journaled"], base, strict=True)]),
        "ratio_unstored_over_unjournaled": spread([a / b for a, b in zip(rates["unstored"], base, strict=True)]),
        "process_cpu_us_per_record": {side: round(statistics.median(cpu[side]) * 1e6, 1) for side in JOURNAL_SIDES},
        "journal_thread_cpu_us_per_record": {
            side: round(statistics.median(thread[side]) * 1e6, 1) for side in JOURNAL_SIDES[1:]
        },
    }


def _unstored(journal: Journal, writes: Sequence[Any]) -> None:
    """``Journal.apply`` with nothing stored (:data:`JOURNAL_SIDES`)."""


async def _held_while_in_flight(start: Any, in_flight: int, latency: float) -> float:
    """Bytes Python holds (tracemalloc) with ``in_flight`` writes waiting on the server, over
    what it held before they started; ``start()`` starts them and returns what to await."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    running = start()
    await asyncio.sleep(latency / 2)  # every write is sent and waits for its answer
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    await running
    return held / in_flight


def memory_per_write(in_flight: int = 500, latency: float = 2.0, repetitions: int = 2) -> dict[str, Any]:
    """KiB held a write in flight: ``write_back_many`` against raw signed POSTs, the server
    holding every answer ``latency`` seconds (connections included on both sides);
    ``repetitions`` rounds, which side goes first alternating, each on a fresh event loop."""
    with server_process(latency=latency, data_id_count=in_flight * 4) as base_url:
        host = base_url.removeprefix("http://")

        async def ours() -> float:
            async with client(base_url, in_flight) as c:
                await c.business_results.write_back_many(writebacks(1, in_flight), concurrency=in_flight)  # the pool

                def start() -> Any:
                    items = writebacks(in_flight + 1, in_flight)
                    return asyncio.ensure_future(c.business_results.write_back_many(items, concurrency=in_flight))

                return await _held_while_in_flight(start, in_flight, latency)

        async def raw() -> float:
            connector = aiohttp.TCPConnector(limit=in_flight)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def one(i: int) -> None:
                    path = WRITE_PATH.format(i)
                    body = orjson.dumps({"busiResult": "B01"})
                    headers = signed_headers(host, "POST", path, [], body.decode())
                    async with session.post(f"{base_url}{path}", data=body, headers=headers) as response:
                        await response.read()

                await asyncio.gather(*(one(2 * in_flight + 1 + i) for i in range(in_flight)))  # the pool

                def start() -> Any:
                    return asyncio.gather(*(one(3 * in_flight + 1 + i) for i in range(in_flight)))

                return await _held_while_in_flight(start, in_flight, latency)

        sides = {"isales_async": ours, "raw_signed_post": raw}
        kib: dict[str, list[float]] = {side: [] for side in sides}
        first, others = [], []
        for repetition in range(repetitions):
            meter = Meter()
            order = alternated(repetition, tuple(sides))
            first.append(order[0])
            for side in order:
                gc.collect()
                kib[side].append(asyncio.run(sides[side]()) / 1024)
            others.append(meter.read()["cores_busy_by_others"])
    ratios = [a / b for a, b in zip(kib["isales_async"], kib["raw_signed_post"], strict=True)]
    return {
        "in_flight": in_flight,
        "server_latency_s": latency,
        "repetitions": repetitions,
        "first_by_round": first,
        "cores_busy_by_others_by_round": others,
        "kib_per_write_in_flight": {side: spread(values, 1) for side, values in kib.items()},
        "ratio_ours_over_raw": spread(ratios),
    }


def checked_records(count: int) -> Any:
    """Records the fake's default tenant defines (B01-B12, each with -1 to -3), so every one is sent."""
    for i in range(1, count + 1):
        parent = f"B{i % 12 + 1:02d}"
        yield Writeback(i, parent, sub_status=f"{parent}-{i % 3 + 1}", work_no="2033")


def definitions_check(records: int, repetitions: int, latency: float = 0.0) -> dict[str, Any]:
    """What ``check_definitions=True`` costs a batch at concurrency 10. With no server latency
    the client's CPU is the limit, so the per-record check shows in full; with latency, the
    one fetch of the definitions a batch waits for shows instead.

    Runs with and without the check alternate (which goes first alternates too), each on a
    fresh client, so every checked run fetches the definitions; the time is the whole call.
    The figures are medians of the per-pair ratios: of throughput (wall clock, which other
    load on the machine disturbs) and of the client process's CPU time per record (which
    it disturbs much less; at zero latency the client's CPU is what bounds throughput).
    """
    with server_process(data_id_count=records, latency=latency) as base_url:

        async def run(check: bool) -> tuple[float, float]:
            async with client(base_url, 10) as c:
                await c.obs_result_codes.page(page_size=1)  # warm the pool, as the unchecked run's first requests would
                started, cpu = time.perf_counter(), time.process_time()
                report = await c.business_results.write_back_many(
                    checked_records(records), concurrency=10, check_definitions=check
                )
                seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
                assert len(report.succeeded) == records, report.summary()
                return records / seconds, cpu_seconds / records

        rates: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        first, others = [], []
        for repetition in range(repetitions):
            meter = Meter()
            order = alternated(repetition, (True, False))
            first.append("checked" if order[0] else "unchecked")
            for check in order:
                gc.collect()
                rate, cpu_per_record = asyncio.run(run(check))
                rates[check].append(rate)
                cpu[check].append(cpu_per_record)
            others.append(meter.read()["cores_busy_by_others"])
        attributed = [asyncio.run(share_of_the_check(base_url, records)) for _ in range(3)]
    throughput_ratios = [a / b for a, b in zip(rates[True], rates[False], strict=True)]
    cpu_ratios = [b / a for a, b in zip(cpu[True], cpu[False], strict=True)]  # as throughput: higher is faster
    definitions = Definitions(
        BusinessResult(f"B{p:02d}", children=tuple(BusinessResult(f"B{p:02d}-{c}") for c in range(1, 4)))
        for p in range(1, 13)
    )
    record = Writeback(12345, "B05", sub_status="B05-2", work_no="2033")
    check_us = min(timeit.repeat(lambda: definitions.refusal("B05", "B05-2"), number=100_000, repeat=5)) * 10
    prepare_us = min(timeit.repeat(lambda: prepare(record), number=20_000, repeat=5)) / 20_000 * 1e6
    return {
        "records": records,
        "concurrency": 10,
        "server_latency_s": latency,
        "repetitions": repetitions,
        "first_by_round": first,
        "cores_busy_by_others_by_round": others,
        "records_per_second": {
            "checked": [round(r) for r in rates[True]],
            "unchecked": [round(r) for r in rates[False]],
        },
        "throughput_ratio_checked_over_unchecked": spread(throughput_ratios, 4),
        "client_cpu_us_per_record": {
            "checked": [round(c * 1e6, 1) for c in cpu[True]],
            "unchecked": [round(c * 1e6, 1) for c in cpu[False]],
        },
        "cpu_throughput_ratio_checked_over_unchecked": spread(cpu_ratios, 4),
        "cost_percent_of_throughput": round((1 - statistics.median(throughput_ratios)) * 100, 2),
        "cost_percent_of_client_cpu": round((1 - statistics.median(cpu_ratios)) * 100, 2),
        "share_of_checked_run_in_fetch_and_check": spread(attributed, 5),
        "cost_percent_attributed": round(statistics.median(attributed) * 100, 3),
        "check_per_record_us": round(check_us, 3),
        "prepare_per_record_us": round(prepare_us, 2),
    }


async def share_of_the_check(base_url: str, records: int) -> float:
    """The share of one checked batch spent fetching the definitions and checking records,
    timed inside that batch: other load on the machine slows both sides of the ratio alike."""
    spent = 0.0
    check = _Batch.refusal

    def timed(batch: _Batch, prepared: Any) -> Any:
        nonlocal spent
        started = time.perf_counter()
        try:
            return check(batch, prepared)
        finally:
            spent += time.perf_counter() - started

    async with client(base_url, 10) as c:
        await c.obs_result_codes.page(page_size=1)
        started = time.perf_counter()
        await c.business_results.definitions()  # what the batch would fetch; it then finds it cached
        spent += time.perf_counter() - started
        _Batch.refusal = timed  # type: ignore[method-assign,assignment]
        try:
            report = await c.business_results.write_back_many(
                checked_records(records), concurrency=10, check_definitions=True
            )
        finally:
            _Batch.refusal = check  # type: ignore[method-assign]
        total = time.perf_counter() - started
    assert len(report.succeeded) == records
    return spent / total


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def streamed(records: int) -> dict[str, Any]:
    """A large streamed batch with a journal: RSS sampled as it goes (flat memory is the claim)."""
    samples: list[tuple[int, float]] = []
    step = max(1, records // 10)
    with server_process(data_id_count=records) as base_url, tempfile.TemporaryDirectory() as tmp:

        async def run() -> Any:
            async with client(base_url, 50) as c:
                items = (Writeback(i, "B01") for i in range(1, records + 1))

                def sample(progress: Any) -> None:
                    if progress.done % step == 0:
                        samples.append((progress.done, round(rss_mib(), 1)))

                return await c.business_results.write_back_many(
                    items, concurrency=50, journal=Path(tmp) / "j.sqlite", on_progress=sample
                )

        report = asyncio.run(run())
    return {
        "records": records,
        "succeeded": len(report.succeeded),
        "seconds": round(report.elapsed, 1),
        "records_per_second": round(report.rate),
        "rss_mib_by_records_done": samples,
    }
