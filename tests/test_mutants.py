"""Tests that kill the mutants a hand-made mutation run left alive (issue 14).

Each test names the behaviour it pins down and the mutation it kills; each was proven by
applying that mutation by hand and watching the test fail. They go through the public
API against the fake server, except where the part is pure.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from click.testing import CliRunner

from isales_async import (
    AuthenticationError,
    Event,
    HTTPStatusError,
    InvalidParameterError,
    ISalesClient,
    ISalesError,
    Journal,
    OutcomeUnknownError,
    Page,
    PaginationError,
    RateLimitedError,
    ReadTimeoutError,
    RequestSent,
    ResponseFormatError,
    RetryBudget,
    RetryPolicy,
    RetryScheduled,
    ServerError,
    Status,
    Timeouts,
    ValidationError,
    Writeback,
    sign,
)
from isales_async._aiohttp import _client_timeout
from isales_async._endpoints import ENDPOINTS, ErrorKind
from isales_async._envelope import decipher, parse_retry_after
from isales_async._pager import Pager
from isales_async._paging import fetch_limit, parse_total_count
from isales_async._retry import Decision, Failure, classify
from isales_async._signing import canonical_request, enc, format_timestamp
from isales_async._validation import (
    MAX_DATA_ID,
    check_access_key,
    check_data_id,
    check_id,
    check_int_range,
    check_number,
    check_path_param,
    check_text,
)
from isales_async.batch._rerun import SKIP_FAILED, SKIP_UNKNOWN
from isales_async.batch._rerun import decide as rerun_decide
from isales_async.cli import cli
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales, Fault, RecordedRequest

from .conftest import MakeClient, ascii_id
from .server_thread import server_in_thread

OBS = "queryOBSResultCode"
WB = "callBusiResult"
CALLRESULT = "callresult"


def error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and every error it was raised from or during, as a traceback prints them."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


async def first_done(*tasks: asyncio.Future[Any]) -> set[asyncio.Future[Any]]:
    """The tasks that are done once the first of them is; the others keep running."""
    with anyio.fail_after(10):  # a safety net for a broken build, never reached when it works
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    return done


# -- _batch._drop_tracebacks made a no-op ------------------------------------------------------


async def test_a_batch_keeps_no_frames_of_the_errors_it_reports(client: ISalesClient, server: FakeISales) -> None:
    """A report may hold thousands of errors: none keeps its frames (and their locals) alive."""
    server.inject(Fault.reset(after=True, endpoint=WB))  # the first write: unknown, raised from a lost connection
    records = [
        Writeback(data_id=1, busi_result="B01"),
        Writeback(data_id=2, busi_result="B01", sub_status="B02-1"),  # 0200034 from the server
        Writeback(data_id=3, busi_result=""),  # refused before sending
    ]
    report = await client.business_results.write_back_many(records, concurrency=1)
    assert sorted(o.data_id for o in report.failed) == [2, 3]
    (unknown,) = report.unknown
    chains = [list(error_chain(o.error)) for o in [*report.failed, unknown]]
    assert isinstance(chains[-1][0], OutcomeUnknownError) and len(chains[-1]) >= 2  # a chain to walk
    assert [e for chain in chains for e in chain if e.__traceback__ is not None] == []


# -- _pager: the page yielded counts among the prefetch pages held ----------------------------


async def test_the_pager_holds_at_most_prefetch_pages_against_the_server(make_client: MakeClient) -> None:
    """While the consumer holds page k, exactly the pages up to k + prefetch - 1 were asked for."""
    sent = 0
    enough = asyncio.Event()
    wanted = 0

    def count(event: Event) -> None:
        nonlocal sent
        if isinstance(event, RequestSent):
            sent += 1
            if sent >= wanted:
                enough.set()

    held: list[int] = []
    async with make_client(hooks=[count]) as client:
        handed = 0
        async for page in client.obs_result_codes.pages(page_size=10, prefetch=3):
            handed += 1
            wanted = min(12, handed + 2)  # 120 codes: 12 pages
            enough.clear()
            if sent < wanted:
                # Every fetch task created so far runs to its RequestSent before this wakes.
                await enough.wait()
            held.append(sent - handed + 1)  # asked for and not handed over, this page included
            assert len(page.items) == 10
    assert held == [3] * 10 + [2, 1]


# -- _batch._JournalSucceeded.__getitem__ and Journal.lookup ignoring their argument ------------


async def test_every_index_of_a_journaled_report_reads_its_own_row(client: ISalesClient, tmp_path: Path) -> None:
    records = [Writeback(data_id=n, busi_result="B01") for n in range(1, 6)]
    report = await client.business_results.write_back_many(records, concurrency=1, journal=tmp_path / "j")
    assert [report.succeeded[i].key for i in range(5)] == ["1", "2", "3", "4", "5"]
    assert [report.succeeded[i].key for i in range(-1, -6, -1)] == ["5", "4", "3", "2", "1"]
    assert [o.key for o in report.succeeded[1:4]] == ["2", "3", "4"]
    with pytest.raises(IndexError):
        report.succeeded[5]


async def test_a_rerun_looks_up_each_record_by_its_own_key(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "j"
    first = [Writeback(data_id=1, busi_result="B01"), Writeback(data_id=2, busi_result="B01", sub_status="B02-1")]
    await client.business_results.write_back_many(first, concurrency=1, journal=path)
    with Journal(path, readonly=True) as journal:
        assert [(journal.lookup(key) or (None,))[0] for key in ("1", "2", "3")] == [
            Status.SUCCEEDED,
            Status.FAILED,
            None,
        ]
    second = await client.business_results.write_back_many(
        [*first, Writeback(data_id=3, busi_result="B01")], concurrency=1, journal=path
    )
    assert [o.key for o in second.succeeded] == ["3"]
    assert sum(second.skipped.values()) == 2 and second.failed == [] and second.unknown == []
    assert server.applied_counts() == {"1": 1, "3": 1}


# -- _retry.RetryBudget: each first attempt deposits ----------------------------------------


async def test_the_retry_budget_refills_with_traffic_and_only_with_it(
    make_client: MakeClient, server: FakeISales
) -> None:
    """One token to start; each first attempt adds half a token; each retry costs one."""
    async with make_client(retry_budget=RetryBudget(ratio=0.5, capacity=1.0)) as client:
        server.inject(Fault.status_code(503, endpoint=OBS))
        await client.obs_result_codes.page()  # retried: the token is spent (its own deposit was capped)
        await client.obs_result_codes.page()
        await client.obs_result_codes.page()  # two first attempts: a token again
        server.inject(Fault.status_code(503, endpoint=OBS))
        await client.obs_result_codes.page()  # retried on that token
        server.inject(Fault.status_code(503, endpoint=OBS))
        with pytest.raises(ServerError):
            await client.obs_result_codes.page()  # half a token: not retried
    assert len(server.requests) == 2 + 1 + 1 + 2 + 1


# -- _session: a request woken into a pause that began meanwhile waits again -------------------


async def test_a_request_woken_into_an_extended_pause_waits_again(make_client: MakeClient, server: FakeISales) -> None:
    """Two 429s in a row: the second extends the pause while another request queues for the
    one connection slot; that request must sit out the extension, not go out at once."""
    clock = FakeClock(autojump=False)
    retried = asyncio.Event()

    def on_retry(event: Event) -> None:
        if isinstance(event, RetryScheduled) and event.attempt == 2:
            retried.set()

    server.inject(
        Fault.status_code(429, retry_after="1", endpoint=OBS), Fault.status_code(429, retry_after="3", endpoint=OBS)
    )
    async with make_client(clock=clock, max_concurrency=1, hooks=[on_retry]) as client:
        with anyio.fail_after(10):
            first = asyncio.ensure_future(client.obs_result_codes.page(page_num=1, page_size=5))
            await clock.wait_for_sleepers(1)  # the first met the 429: a pause until t=1
            second = asyncio.ensure_future(client.obs_result_codes.page(page_num=2, page_size=5))
            await clock.wait_for_sleepers(2)
            assert clock.sleeper_deadlines == pytest.approx([1.0, 1.0])
            clock.advance(1.0)  # the first retries and holds the slot; the second queues for it
            await retried.wait()  # the retry met a 429 too: the pause now ends at t=4
            asleep = asyncio.ensure_future(clock.wait_for_sleepers(2))
            assert await first_done(asleep, second) == {asleep}
            assert [r.query for r in server.requests] == [
                (("pageSize", "5"), ("pageNum", "1")),
                (("pageSize", "5"), ("pageNum", "1")),
            ]
            assert clock.sleeper_deadlines == pytest.approx([4.0, 4.0])
            clock.advance(3.0)
            pages = await asyncio.gather(first, second)
    assert [p.page_num for p in pages] == [1, 2]
    assert len(server.requests) == 4


# -- _session: a 503's Retry-After pauses the client, as a 429's does --------------------------


async def test_a_503_retry_after_pauses_every_request_of_the_client(
    make_client: MakeClient, server: FakeISales
) -> None:
    clock = FakeClock(autojump=False)
    server.inject(Fault.status_code(503, retry_after="2", endpoint=OBS))
    async with make_client(clock=clock) as client:
        with anyio.fail_after(10):
            first = asyncio.ensure_future(client.obs_result_codes.page(page_size=5))
            await clock.wait_for_sleepers(1)
            others = [asyncio.ensure_future(client.obs_result_codes.page(page_num=n, page_size=5)) for n in (2, 3)]
            asleep = asyncio.ensure_future(clock.wait_for_sleepers(3))
            assert await first_done(asleep, *others) == {asleep}
            assert len(server.requests) == 1  # nobody went out during the pause
            assert clock.sleeper_deadlines == pytest.approx([2.0] * 3)
            clock.advance(2.0)
            pages = await asyncio.gather(first, *others)
    assert [p.page_num for p in pages] == [1, 2, 3]
    assert len(server.requests) == 4


def test_a_503_hint_within_the_cap_sets_the_retry_delay() -> None:
    """The pure side: a 503's hint within the cap is the delay, as a 429's is."""
    for failure in (Failure.UNAVAILABLE, Failure.RATE_LIMITED):
        decision = RetryPolicy().decide(attempt=1, failure=failure, write=False, elapsed=0.0, retry_after=5.0)
        assert (decision.retry, decision.delay) == (True, 5.0)


# -- _limits.RouteGate: the per-route concurrency limit -----------------------------------


async def test_a_route_limit_below_the_client_limit_bounds_that_route(
    make_client: MakeClient, server: FakeISales
) -> None:
    """callresult allows 10 in flight: a client allowing 30 still sends it at most 10 at once."""
    sent = 0
    ten_arrived = asyncio.Event()
    seen_at_tenth: dict[str, int] = {}

    def count(event: Event) -> None:
        nonlocal sent
        sent += isinstance(event, RequestSent)

    def on_arrival(request: RecordedRequest) -> None:
        if len(server.requests_to(CALLRESULT)) == 10:
            seen_at_tenth.update(sent=sent, in_flight=server.in_flight)
            ten_arrived.set()

    server.on_request.append(on_arrival)
    server.latency = 0.05  # every answer takes a while, so requests overlap
    server.inject(Fault.hang(endpoint=CALLRESULT, times=10))
    async with make_client(max_concurrency=30, hooks=[count]) as client:
        pages = [
            asyncio.ensure_future(client.call_results.page("1001", page_num=n, page_size=10)) for n in range(1, 13)
        ]
        with anyio.fail_after(10):
            await ten_arrived.wait()
        assert seen_at_tenth == {"sent": 10, "in_flight": 10}  # the 11th and 12th wait for a slot
        server.release()
        results = await asyncio.gather(*pages)
    assert [p.page_num for p in results] == list(range(1, 13))
    assert server.max_in_flight == 10
    assert len(server.requests_to(CALLRESULT)) == 12


# -- Timeouts.read reaches aiohttp (_aiohttp._client_timeout) ----------------------------------------------------


def test_the_connect_and_read_timeouts_are_handed_to_aiohttp() -> None:
    """The total is the transport's own to watch (tests/test_hot_path.py shows it holds)."""
    timeout = _client_timeout(Timeouts(connect=1.0, read=2.0, total=3.0))
    assert (timeout.connect, timeout.sock_read, timeout.total) == (1.0, 2.0, None)
    assert _client_timeout(Timeouts()) == aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=None)


async def test_a_read_timeout_alone_ends_a_silent_attempt(make_client: MakeClient, server: FakeISales) -> None:
    """No total timeout: only the read timeout can end an answer that never comes."""
    server.inject(Fault.hang(endpoint=OBS))
    async with make_client(timeouts=Timeouts(read=0.05, total=None), retry=RetryPolicy(attempts=1)) as client:
        with anyio.fail_after(10), pytest.raises(ReadTimeoutError):
            await client.obs_result_codes.page()
    assert len(server.requests) == 1


# -- cli: the follow-up file lists this run's rows and the earlier runs' rows, each once ---------


def _invoke(server: FakeISales, *args: str) -> int:
    env = {"ISALES_BASE_URL": server.base_url, "ISALES_AK": DEFAULT_AK, "ISALES_SK": DEFAULT_SK, "ISALES_VDN_ID": "1"}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False).exit_code


def _followup(source: Path) -> collections.Counter[tuple[Any, ...]]:
    text = source.with_name(source.name + ".followup.jsonl").read_text()
    return collections.Counter(
        (entry["status"], entry.get("dataId"), entry.get("line")) for entry in map(orjson.loads, text.splitlines())
    )


def test_the_followup_file_keeps_the_earlier_runs_rows_beside_this_runs(tmp_path: Path) -> None:
    header = "dataId,busiResult,subStatus,busiResultDesc,workNo\n"
    monday = tmp_path / "monday.csv"
    monday.write_text(header + "1,B01,,,\n2,B01,B02-1,,\n3,B01,,,\n")
    journal = str(tmp_path / "nights.journal.sqlite")
    common = ("--no-progress", "--no-check", "--concurrency", "1", "--journal", journal)
    with server_in_thread() as server:
        server.inject(Fault.reset(after=True, endpoint=WB))  # dataId 1: applied, the answer lost
        assert _invoke(server, "writeback", str(monday), *common) == 1
        assert _followup(monday) == {("unknown", "1", 2): 1, ("failed", "2", 3): 1}

        tuesday = tmp_path / "tuesday.csv"
        # Tuesday's file has Monday's unsettled records again (this run skips them) and new ones.
        tuesday.write_text(header + "1,B01,,,\n2,B01,B02-1,,\n4,B01,B03-1,,\n5,B01,,,\n6,,,,\n")
        assert _invoke(server, "writeback", str(tuesday), *common) == 1
        assert _followup(tuesday) == {
            ("failed", "4", 4): 1,
            ("failed", "6", 6): 1,
            ("earlier_unknown", "1", None): 1,
            ("earlier_failed", "2", None): 1,
        }
        assert server.applied_counts() == {"1": 1, "3": 1, "5": 1}


# -- mutmut survivors of the pure core (nox -s mutate) -------------------------------------------

SIGN_ARGS: dict[str, Any] = {
    "method": "GET",
    "path": "/p",
    "query": [("k", "v")],
    "host": "h:1",
    "body": "",
    "ak": "ak",
    "sk": "sk",
    "timestamp": "2024-01-01T00:00:00Z",
}


@pytest.mark.parametrize("field", ["method", "path", "query", "host", "body", "ak", "sk", "timestamp"])
def test_text_utf8_cannot_encode_is_refused_naming_its_argument(field: str) -> None:
    bad = "x\ud800"
    args = {**SIGN_ARGS, field: [("k", bad)] if field == "query" else bad}
    with pytest.raises(ValidationError) as info:
        sign(**args)
    assert (info.value.field, str(info.value)) == (
        field,
        f"{field}: cannot be encoded as UTF-8 (it holds a lone surrogate)",
    )
    assert bad not in str(info.value) and repr(bad) not in str(info.value)


def test_every_signed_header_is_named_and_listed_in_the_canonical_request() -> None:
    text = canonical_request("get", "/p", [], {"Host": "h:1", "X-B": "b c", "x-a": "a"}, "")
    assert text == "GET\n/p\nhost;x-a;x-b\nhost:h%3A1\nx-a:a\nx-b:b%20c\n"


def test_a_long_value_is_encoded_like_a_short_one() -> None:
    short = "a/b~c d"
    long = short * 20  # past the cached length
    assert enc(long) == enc(short) * 20 == "a%2Fb~c%20d" * 20


def test_a_timestamp_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        plus2 = dt.timezone(dt.timedelta(hours=2))
        assert format_timestamp(dt.datetime(2024, 1, 1, 2, 30, 5, tzinfo=plus2)) == "2024-01-01T00:30:05Z"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (400, Failure.FINAL),
        (404, Failure.FINAL),
        (499, Failure.FINAL),
        (500, Failure.SERVER_ERROR),
        (599, Failure.SERVER_ERROR),
    ],
)
def test_a_status_outside_the_retry_table_is_final_below_500(status: int, failure: Failure) -> None:
    assert classify(HTTPStatusError("x", status=status, endpoint=OBS)) is failure


def test_each_give_up_says_why_as_the_hooks_report_it() -> None:
    policy = RetryPolicy(attempts=2, initial_delay=1.0, deadline=30.0)
    no_jitter = {"rand": lambda: 1.0}
    assert policy.decide(attempt=1, failure=Failure.LOST, write=True, elapsed=0.0, **no_jitter) == Decision(
        False, unknown=True, reason="lost is not retried for a write"
    )
    assert policy.decide(attempt=1, failure=Failure.FINAL, write=False, elapsed=0.0, **no_jitter) == Decision(
        False, reason="final is not retried for a read"
    )
    assert policy.decide(attempt=2, failure=Failure.LOST, write=False, elapsed=0.0, **no_jitter) == Decision(
        False, reason="2 attempts made"
    )
    assert policy.decide(attempt=1, failure=Failure.LOST, write=False, elapsed=29.5, **no_jitter) == Decision(
        False, reason="the 30s deadline leaves no room for a 1.00s wait"
    )
    assert policy.decide(attempt=1, failure=Failure.LOST, write=False, elapsed=0.0, **no_jitter) == Decision(
        True, delay=1.0, reason="lost"
    )


def test_a_wait_that_ends_exactly_at_the_deadline_is_allowed() -> None:
    policy = RetryPolicy(initial_delay=1.0, deadline=30.0)
    decision = policy.decide(attempt=1, failure=Failure.LOST, write=False, elapsed=29.0, rand=lambda: 1.0)
    assert (decision.retry, decision.delay) == (True, 1.0)


@pytest.mark.parametrize("hint", [0.0, 0.5, 1.0])
def test_a_hint_below_a_second_is_still_honoured(hint: float) -> None:
    decision = RetryPolicy().decide(
        attempt=1, failure=Failure.RATE_LIMITED, write=True, elapsed=0.0, retry_after=hint, rand=lambda: 0.0
    )
    assert (decision.retry, decision.delay) == (True, hint)


@pytest.mark.parametrize("zone", ["GMT", "-0000", "+0000"])
def test_an_http_date_retry_after_in_any_utc_spelling_counts_from_now(zone: str) -> None:
    """``-0000`` parses to a naive datetime: it is UTC all the same."""
    now = dt.datetime(2026, 10, 21, 7, 27, 30, tzinfo=dt.timezone.utc)
    assert parse_retry_after(f"Wed, 21 Oct 2026 07:28:00 {zone}", now) == 30.0


NOW = dt.datetime(2026, 10, 21, 7, 27, 30, tzinfo=dt.timezone.utc)
IN_30S = "Wed, 21 Oct 2026 07:28:00 GMT"

# (status, Retry-After, body) -> the exact error class, str() and attributes decipher raises.
DECIPHER_ERRORS: list[tuple[int, str | None, bytes, type[Exception], str, dict[str, Any]]] = [
    (
        300,
        None,
        b'{"resultCode": "0200000"}',
        HTTPStatusError,
        f"{OBS}: HTTP 300: " + '{"resultCode": "0200000"}',
        {"status": 300, "retry_after": None},
    ),
    (404, "7", b"gone", HTTPStatusError, f"{OBS}: HTTP 404: gone", {"status": 404, "retry_after": None}),
    (401, None, b"", AuthenticationError, f"{OBS}: the server refused the request signature", {"status": 401}),
    (429, IN_30S, b"", RateLimitedError, f"{OBS}: rate limited (HTTP 429)", {"status": 429, "retry_after": 30.0}),
    (500, "7", b"oops", ServerError, f"{OBS}: HTTP 500: oops", {"status": 500, "retry_after": 7.0}),
    (503, IN_30S, b"", ServerError, f"{OBS}: HTTP 503: ", {"status": 503, "retry_after": 30.0}),
    (200, None, b"<html>", ResponseFormatError, f"response body is not JSON ({OBS}): <html>", {"snippet": "<html>"}),
    (200, None, b"[1]", ResponseFormatError, f"response body is not a JSON object ({OBS}): [1]", {"snippet": "[1]"}),
    (200, None, b"{}", ResponseFormatError, f"response has no resultCode ({OBS}): {{}}", {"snippet": "{}"}),
    (
        200,
        None,
        b'{"resultCode": "0200001"}',
        InvalidParameterError,
        f"{OBS} failed with 0200001: Parameter error",
        {"code": "0200001", "description": "", "meaning": "Parameter error"},
    ),
]


@pytest.mark.parametrize(
    ("status", "retry_after", "body", "error", "text", "attributes"),
    DECIPHER_ERRORS,
    ids=[f"{c[0]}-{c[2][:12]!r}" for c in DECIPHER_ERRORS],
)
def test_each_failure_is_deciphered_to_its_exact_error(
    status: int, retry_after: str | None, body: bytes, error: type[Exception], text: str, attributes: dict[str, Any]
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    with pytest.raises(ISalesError) as info:
        decipher(ENDPOINTS[OBS], status, headers, body, NOW)
    assert type(info.value) is error
    assert str(info.value).startswith(text) and (error is AuthenticationError or str(info.value) == text)
    assert {name: getattr(info.value, name) for name in attributes} == attributes
    assert info.value.endpoint == OBS  # type: ignore[attr-defined]


def test_a_snippet_is_the_first_120_bytes_decoded_leniently() -> None:
    body = b"\xff" + b"a" * 200
    with pytest.raises(ResponseFormatError) as info:
        decipher(ENDPOINTS[OBS], 200, {}, body, NOW)
    assert info.value.snippet == "\ufffd" + "a" * 119


def test_a_code_means_what_the_endpoint_or_else_the_common_table_says() -> None:
    endpoint = ENDPOINTS["callBusiResult"]
    assert endpoint.meaning("0200034")[0] is ErrorKind.PARAMETER  # its own table
    assert endpoint.meaning("02000001") == (ErrorKind.PARAMETER, "Empty parameter")  # the common table
    assert endpoint.meaning("0299999") == (ErrorKind.OTHER, "Unknown error code")


@pytest.mark.parametrize("value", ["X5", "5X", "5-", " ", "five", True, [1], {"n": 1}])
def test_a_total_count_that_is_not_a_number_is_refused_with_its_value(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_total_count(value)
    assert info.value.args == (value,)


def test_max_items_and_the_total_both_bound_the_pages_fetched() -> None:
    assert fetch_limit(1, 10, 10, 30, start_page=1, max_items=100) == 3  # the total is the lower bound
    assert fetch_limit(1, 10, 10, 300, start_page=1, max_items=25) == 3  # max_items is
    assert fetch_limit(1, 10, 10, None, start_page=2, max_items=25) == 4


def test_by_default_a_rerun_sends_nothing_in_doubt_and_nothing_that_failed_unchanged() -> None:
    assert rerun_decide(Status.UNKNOWN, "f", "f") == SKIP_UNKNOWN
    assert rerun_decide(Status.SENDING, "f", "g") == SKIP_UNKNOWN
    assert rerun_decide(Status.FAILED, "f", "f") == SKIP_FAILED


def listing(total: int) -> tuple[Pager[int], list[int]]:
    """A pager over ``total`` numbers in memory, and the pages it was asked for."""
    calls: list[int] = []

    async def fetch(page_num: int, page_size: int) -> Page[int]:
        calls.append(page_num)
        return Page(list(range(total))[(page_num - 1) * page_size : page_num * page_size], total, page_num, page_size)

    return Pager(fetch, key=lambda item: item, max_page_size=50), calls


PAGES_DEFAULTS: dict[str, Any] = {"page_size": 10, "prefetch": 1, "max_items": None, "start_page": 1, "max_pages": 100}


@pytest.mark.parametrize(
    ("field", "value"),
    [("page_size", 0), ("page_size", 51), ("prefetch", 0), ("start_page", 0), ("max_pages", 0), ("max_items", 0)],
)
def test_pager_arguments_out_of_range_are_refused_naming_them(field: str, value: int) -> None:
    pager, calls = listing(100)
    for method in (pager.pages, pager.iter):
        with pytest.raises(ValidationError) as info:
            method(**{**PAGES_DEFAULTS, field: value})
        assert info.value.field == field
    assert calls == []


@pytest.mark.parametrize(
    ("page_num", "page_size", "field"), [(0, 10, "page_num"), (1, 0, "page_size"), (1, 51, "page_size")]
)
async def test_a_single_page_out_of_range_is_refused_naming_the_argument(
    page_num: int, page_size: int, field: str
) -> None:
    pager, calls = listing(100)
    with pytest.raises(ValidationError) as info:
        await pager.page(page_num, page_size)
    assert (info.value.field, calls) == (field, [])


async def test_the_smallest_allowed_arguments_are_accepted_and_the_largest_page() -> None:
    pager, _ = listing(3)
    assert [p.items async for p in pager.pages(**{**PAGES_DEFAULTS, "page_size": 1, "max_pages": 3})] == [[0], [1], [2]]
    assert [i async for i in pager.iter(**{**PAGES_DEFAULTS, "max_items": 1})] == [0]
    assert (await pager.page(1, 50)).items == [0, 1, 2]
    assert [p.items async for p in pager.pages(**{**PAGES_DEFAULTS, "max_pages": 1})] == [[0, 1, 2]]


async def test_the_pager_passes_start_page_max_items_and_max_pages_on() -> None:
    pager, calls = listing(100)
    assert [i async for i in pager.iter(**{**PAGES_DEFAULTS, "start_page": 3, "max_items": 15})] == list(range(20, 35))
    assert calls == [3, 4]
    calls.clear()
    assert [p.page_num async for p in pager.pages(**{**PAGES_DEFAULTS, "max_items": 15})] == calls == [1, 2]
    calls.clear()
    pages: list[int] = []
    with pytest.raises(PaginationError, match="cap of 3 pages"):
        async for page in pager.pages(**{**PAGES_DEFAULTS, "max_pages": 3}):
            pages.append(page.page_num)
    assert (pages, calls) == ([1, 2], [1, 2, 3])  # the third is the cap: fetched, more to come, not yielded


# What each check says about a value it refuses, word for word: the message is the user's
# only hint, and its field is what a CLI or a batch report names.
REFUSALS: list[tuple[Callable[[], object], str]] = [
    (lambda: check_int_range("page_size", True, 1, 50), "page_size: must be an integer, got bool"),
    (lambda: check_int_range("page_size", 51, 1, 50), "page_size: must be between 1 and 50, got 51"),
    (lambda: check_int_range("prefetch", 0, 1), "prefetch: must be at least 1, got 0"),
    (lambda: check_number("delay", "1"), "delay: must be a finite number, at least 0, got '1'"),
    (lambda: check_number("delay", -0.5), "delay: must be a finite number, at least 0, got -0.5"),
    (
        lambda: check_number("read", 0, optional=True, positive=True),
        "read: must be a finite number above 0 or None, got 0",
    ),
    (lambda: check_number("read", math.inf, positive=True), "read: must be a finite number above 0, got inf"),
    (lambda: check_text("work_no", None, required=True), "work_no: is required"),
    (lambda: check_text("work_no", 5), "work_no: must be a string, got int"),
    (lambda: check_text("work_no", "  ", required=True), "work_no: must not be empty"),
    (lambda: check_text("work_no", "abcd", max_len=3), "work_no: must be at most 3 characters, got 4"),
    (lambda: check_text("work_no", "abc", below=3), "work_no: must be fewer than 3 characters, got 3"),
    (lambda: check_text("desc", "ok\ud800"), "desc: is not valid Unicode text: a lone surrogate U+D800 at position 2"),
    (lambda: check_access_key("ak", 5), "ak: must be a string, got int"),
    (
        lambda: check_access_key("ak", "a/b"),
        "ak: must be printable ASCII without spaces or '/' (it is a segment of 'auth-v2/AK/...')",
    ),
    (lambda: check_id("call_id", None), "call_id: must be a string or an integer, got NoneType"),
    (lambda: check_id("call_id", True), "call_id: must be a string or an integer, got bool"),
    (lambda: check_id("call_id", " "), "call_id: must not be empty"),
    (lambda: check_id("call_id", "1\udfff"), "call_id: cannot be encoded as UTF-8 (it holds a lone surrogate)"),
    (lambda: check_path_param("def_id", ".."), "def_id: '..' is not a usable path segment"),
    (lambda: check_path_param("def_id", "."), "def_id: '.' is not a usable path segment"),
    (lambda: check_data_id(1.0), "data_id: must be an integer or a string of digits, got float"),
    (lambda: check_data_id("0"), f"data_id: must be between 1 and {MAX_DATA_ID}, got 0"),
    (lambda: check_data_id("1" * 20), f"data_id: must be at most {MAX_DATA_ID}, got 20 digits"),
]


@pytest.mark.parametrize(("check", "text"), REFUSALS, ids=[ascii_id(text)[:50] for _, text in REFUSALS])
def test_each_refusal_names_its_field_and_says_why(check: Callable[[], object], text: str) -> None:
    with pytest.raises(ValidationError) as info:
        check()
    assert str(info.value) == text
    assert info.value.field == text.split(":")[0]


def test_each_check_accepts_its_bounds_and_returns_the_value() -> None:
    assert check_int_range("page_size", 50, 1, 50) == 50 and check_int_range("page_num", 1, 1) == 1
    assert check_number("delay", 0) == 0 and check_number("read", None, optional=True) is None
    assert check_number("read", 0.001, positive=True) == 0.001
    assert check_text("work_no", "abc", max_len=3) == "abc" and check_text("work_no", "ab", below=3) == "ab"
    assert check_text("desc", "客户 ✓") == "客户 ✓" and check_text("desc", None) is None
    assert check_access_key("ak", "AK-1_x.~") == "AK-1_x.~"
    assert (check_id("call_id", 7), check_path_param("def_id", "..a")) == ("7", "..a")
    assert (check_data_id(MAX_DATA_ID), check_data_id("0001")) == (str(MAX_DATA_ID), "1")


def test_an_attrs_field_check_names_the_attribute_and_passes_the_options() -> None:
    with pytest.raises(ValidationError) as info:
        RetryPolicy(attempts=0)
    assert str(info.value) == "attempts: must be at least 1, got 0"
    with pytest.raises(ValidationError) as info:
        Timeouts(read=0)
    assert str(info.value) == "read: must be a finite number above 0 or None, got 0"
