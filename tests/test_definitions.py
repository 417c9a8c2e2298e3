"""Issue 19: writebacks checked against the tenant's own business-result definitions.

The check itself is pure and tested synchronously; the fetch, its cache and the batch
are tested end to end against the fake server, whose writeback refuses what the
definitions lack just as the real server does.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from isales_async import (
    AuthenticationError,
    BatchAbortedError,
    BusinessResult,
    ConnectError,
    Definitions,
    DefinitionsUnavailableError,
    DefLevel,
    InvalidParameterError,
    ISalesClient,
    Journal,
    PaginationError,
    Status,
    UndefinedResultError,
    ValidationError,
    Writeback,
)
from isales_async._models import converter
from isales_async.batch._definitions import NO_SUB_STATUSES, NOT_ITS_SUB_STATUS, UNDEFINED_RESULT
from isales_async.batch._rerun import SKIP_SUCCEEDED
from isales_async.resources.business_results import DEFINITIONS_TTL
from isales_async.testing import FakeClock, FakeISales, Fault, PagingQuirk

from .conftest import MakeClient

WB = "callBusiResult"
DEFS = "queryBusinessResults"

# A small tenant: two parents with sub-statuses, one without any.
TENANT: list[dict[str, Any]] = [
    {
        "code": "B01",
        "name": "Agreed",
        "defLevel": "1",
        "children": [
            {"code": "B01-1", "name": "Renewed", "defLevel": "2"},
            {"code": "B01-2", "name": "Upgraded", "defLevel": "2"},
        ],
    },
    {
        "code": "B02",
        "name": "Refused",
        "defLevel": "1",
        "children": [{"code": "B02-1", "name": "Too expensive", "defLevel": "2"}],
    },
    {"code": "B12", "name": "Call back later", "defLevel": "1", "children": []},
]


def results_of(data: list[dict[str, Any]]) -> list[BusinessResult]:
    def one(item: Mapping[str, Any]) -> BusinessResult:
        level = DefLevel(int(item["defLevel"]))
        return BusinessResult(item["code"], item["name"], level, tuple(one(c) for c in item.get("children", ())))

    return [one(item) for item in data]


def tenant() -> Definitions:
    return Definitions(results_of(TENANT))


def parents(count: int, children: int = 1) -> list[dict[str, Any]]:
    """``count`` parents ``P001``... each with ``children`` sub-statuses ``P001-1``..."""
    return [
        {
            "code": f"P{p:03d}",
            "name": f"parent {p}",
            "defLevel": "1",
            "children": [
                {"code": f"P{p:03d}-{c}", "name": f"sub {c}", "defLevel": "2"} for c in range(1, children + 1)
            ],
        }
        for p in range(1, count + 1)
    ]


def sent_keys(server: FakeISales) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in server.requests_to(WB)]


# -- the check, pure --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("busi_result", "sub_status"),
    [("B01", "B01-1"), ("B01", "B01-2"), ("B02", "B02-1"), ("B01", None), ("B01", ""), ("B12", None), ("B12", "")],
)
def test_a_defined_pair_passes(busi_result: str, sub_status: str | None) -> None:
    assert tenant().refusal(busi_result, sub_status) is None
    tenant().check(busi_result, sub_status)


@pytest.mark.parametrize(
    ("busi_result", "sub_status", "field", "reason", "suggestions", "words"),
    [
        ("B12x", None, "busi_result", UNDEFINED_RESULT, ("B12",), ["'B12x' is not a business result", "'B12'"]),
        ("b01", "B01-1", "busi_result", UNDEFINED_RESULT, ("B01",), ["'b01'", "closest: 'B01'"]),
        (" B02", None, "busi_result", UNDEFINED_RESULT, ("B02",), ["' B02'"]),
        ("ZZZ", None, "busi_result", UNDEFINED_RESULT, (), ["'ZZZ'", "none is close to it"]),
        ("B01-1", None, "busi_result", UNDEFINED_RESULT, ("B01",), ["it is a sub-status of 'B01'"]),
        (
            "B01",
            "B02-1",
            "sub_status",
            NOT_ITS_SUB_STATUS,
            ("B01-1", "B01-2"),
            ["'B02-1' is not a sub-status of 'B01'", "of 'B02'"],
        ),
        (
            "B01",
            "B01-3",
            "sub_status",
            NOT_ITS_SUB_STATUS,
            ("B01-2", "B01-1"),
            ["closest of the sub-statuses of 'B01': 'B01-2'"],
        ),
        ("B01", "B01-l", "sub_status", NOT_ITS_SUB_STATUS, ("B01-2", "B01-1"), ["'B01-l'"]),
        ("B12", "B12-1", "sub_status", NO_SUB_STATUSES, (), ["'B12' has no sub-statuses", "got 'B12-1'"]),
        ("B12", "B02-1", "sub_status", NO_SUB_STATUSES, (), ["got 'B02-1' (it is a sub-status of 'B02')"]),
        ("B12", "B02-x", "sub_status", NO_SUB_STATUSES, (), ["(closest sub-statuses: 'B02-1' of 'B02'"]),
    ],
)
def test_a_refusal_names_the_field_the_value_and_the_closest_codes(
    busi_result: str,
    sub_status: str | None,
    field: str,
    reason: str,
    suggestions: tuple[str, ...],
    words: list[str],
) -> None:
    refused = tenant().refusal(busi_result, sub_status)
    assert isinstance(refused, UndefinedResultError) and isinstance(refused, ValidationError)
    assert (refused.field, refused.reason, refused.suggestions) == (field, reason, suggestions)
    assert refused.value == (busi_result if field == "busi_result" else sub_status)
    assert str(refused).startswith(f"{field}: ")
    for word in words:
        assert word in str(refused), str(refused)
    with pytest.raises(UndefinedResultError) as info:
        tenant().check(busi_result, sub_status)
    assert str(info.value) == str(refused)


def test_each_refusal_is_a_fresh_error_and_survives_pickle() -> None:
    definitions = tenant()
    first, second = definitions.refusal("B12x", None), definitions.refusal("B12x", None)
    assert first is not None and second is not None and first is not second
    assert str(first) == str(second)
    clone = pickle.loads(pickle.dumps(first))
    assert (clone.field, clone.value, clone.reason, clone.suggestions) == (
        "busi_result",
        "B12x",
        UNDEFINED_RESULT,
        ("B12",),
    )


def test_the_level_1_codes_are_the_top_level_items_and_a_code_listed_twice_keeps_both_listings() -> None:
    listed = results_of(
        [
            *TENANT,
            {
                "code": "B01",
                "name": "Agreed",
                "defLevel": "1",
                "children": [{"code": "B01-9", "name": "x", "defLevel": "2"}],
            },
            {"code": "S9", "name": "a sub-result listed at the top", "defLevel": "2", "children": []},
        ]
    )
    definitions = Definitions(listed)
    assert definitions.codes == ("B01", "B02", "B12")
    assert definitions.sub_statuses("B01") == ("B01-1", "B01-2", "B01-9")
    assert definitions.sub_statuses("B12") == () and definitions.sub_statuses("nope") == ()
    assert definitions.refusal("B01", "B01-9") is None
    refused = definitions.refusal("S9", None)
    assert refused is not None and refused.field == "busi_result"
    assert repr(definitions) == "Definitions(3 business results, 4 sub-statuses)"


def test_a_tenant_without_definitions_says_so() -> None:
    refused = Definitions([]).refusal("B01", None)
    assert refused is not None and "defines no business results at all" in str(refused)


# -- the fake server refuses what the definitions lack ------------------------------------------------------


async def test_the_fake_refuses_an_undefined_code_and_takes_its_definitions_per_test(make_client: MakeClient) -> None:
    server = FakeISales(business_results=TENANT)
    url = await server.start()
    try:
        async with make_client(base_url=url) as client:
            assert [r.code async for r in client.business_results.iter()] == ["B01", "B02", "B12"]
            for busi_result, sub_status, code in [
                ("B13", None, "0200001"),  # undefined
                ("B01-1", None, "0200001"),  # a sub-status is no level-1 code
                ("B01", "B02-1", "0200034"),  # another parent's sub-status
                ("B12", "B12-1", "0200034"),  # a code without sub-statuses given one
            ]:
                with pytest.raises(InvalidParameterError) as info:
                    await client.business_results.write_back(7, busi_result, sub_status=sub_status)
                assert info.value.code == code
            await client.business_results.write_back(7, "B12")
            server.business_results = [*TENANT, {"code": "B13", "name": "new", "defLevel": "1"}]  # no children key
            await client.business_results.write_back(8, "B13")
            with pytest.raises(InvalidParameterError, match="0200034"):
                await client.business_results.write_back(9, "B13", sub_status="B13-1")
    finally:
        await server.close()
    assert server.applied_counts() == {"7": 1, "8": 1}


# -- fetching: once, shared, cached, never a cached failure ---------------------------------------------------


async def test_the_definitions_are_every_page_fetched_once_and_cached_for_the_ttl(
    make_client: MakeClient, server: FakeISales
) -> None:
    server.business_results = parents(120)  # three pages of 50
    clock = FakeClock()
    client = make_client(clock=clock)
    async with client:
        first = await client.business_results.definitions()
        assert len(first.codes) == 120 and first.sub_statuses("P120") == ("P120-1",)
        assert len(server.requests_to(DEFS)) == 3
        clock.advance(DEFINITIONS_TTL - 1)
        assert await client.business_results.definitions() is first
        assert len(server.requests_to(DEFS)) == 3
        clock.advance(1)
        again = await client.business_results.definitions()
        assert again is not first and len(server.requests_to(DEFS)) == 6
        assert await client.business_results.definitions(refresh=True) is not again
        assert len(server.requests_to(DEFS)) == 9
    assert DEFINITIONS_TTL == 300.0


async def test_fifty_concurrent_single_writebacks_fetch_the_definitions_once(
    client: ISalesClient, server: FakeISales
) -> None:
    await asyncio.gather(
        *(
            client.business_results.write_back(
                i, f"B{i % 12 + 1:02d}", sub_status=f"B{i % 12 + 1:02d}-1", check_definitions=True
            )
            for i in range(1, 51)
        )
    )
    assert len(server.requests_to(DEFS)) == 1
    assert server.applied_counts() == {str(i): 1 for i in range(1, 51)}


async def test_a_single_writeback_is_refused_unsent_and_without_a_check_it_goes_to_the_server(
    client: ISalesClient, server: FakeISales
) -> None:
    with pytest.raises(UndefinedResultError) as info:
        await client.business_results.write_back(5, "B13", check_definitions=True)
    assert (info.value.field, info.value.value, info.value.suggestions[:1]) == ("busi_result", "B13", ("B12",))
    with pytest.raises(UndefinedResultError, match="'B02-1' is not a sub-status of 'B01'"):
        await client.business_results.write_back(5, "B01", sub_status="B02-1", check_definitions=True)
    with pytest.raises(ValidationError, match="data_id"):  # the record's own checks come first, before any fetch
        await client.business_results.write_back("x", "B01", check_definitions=True)
    assert server.requests_to(WB) == [] and len(server.requests_to(DEFS)) == 1
    with pytest.raises(InvalidParameterError):  # unchecked, the server refuses it
        await client.business_results.write_back(5, "B13")
    assert len(server.requests_to(WB)) == 1


async def test_concurrent_callers_share_a_failed_fetch_and_the_failure_is_not_cached(
    client: ISalesClient, server: FakeISales
) -> None:
    server.business_results = parents(60)
    server.paging = PagingQuirk.IGNORE_PAGE_NUM  # page 2 repeats page 1: a PaginationError
    calls = [client.business_results.write_back(i, "P001", check_definitions=True) for i in range(1, 51)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, DefinitionsUnavailableError) for o in outcomes)
    error = outcomes[0]
    assert isinstance(error, DefinitionsUnavailableError)
    assert isinstance(error.cause, PaginationError) and error.__cause__ is error.cause
    assert "queryBusinessResults failed with PaginationError" in str(error)
    assert len(server.requests_to(DEFS)) == 2  # pages 1 and 2 of one fetch, for all fifty
    assert server.requests_to(WB) == []

    server.paging = None
    await client.business_results.write_back(1, "P001", check_definitions=True)
    assert len(server.requests_to(DEFS)) == 4 and server.applied_counts() == {"1": 1}


async def test_a_cancelled_caller_does_not_cancel_the_fetch_the_others_wait_on(
    client: ISalesClient, server: FakeISales
) -> None:
    arrived = asyncio.Event()
    server.inject(Fault.hang(endpoint=DEFS))
    server.on_request.append(lambda r: r.endpoint == DEFS and arrived.set())
    first = asyncio.ensure_future(client.business_results.definitions())
    second = asyncio.ensure_future(client.business_results.definitions())
    await arrived.wait()
    first.cancel()
    server.release()
    definitions = await second
    assert first.cancelled() and len(definitions.codes) == 12
    assert len(server.requests_to(DEFS)) == 1


# -- the batch ---------------------------------------------------------------------------------------------------


def mixed_records() -> list[Writeback]:
    """Good records 1-20 on the default tenant (B01...B12, each with -1 to -3), and the bad kinds."""
    good = [Writeback(i, f"B{i % 12 + 1:02d}", sub_status=f"B{i % 12 + 1:02d}-{i % 3 + 1}") for i in range(1, 21)]
    return [
        *good[:10],
        Writeback(101, "B13"),  # undefined
        Writeback(102, "B12x", sub_status="B12-1"),  # a typo
        Writeback(103, "B01", sub_status="B02-1"),  # another parent's sub-status
        Writeback(104, "B01", sub_status="B01-4"),  # a sub-status typo
        Writeback(105, "B14", sub_status="B14-1"),  # the code without children, given a sub-status
        Writeback(106, "b05"),  # case
        *good[10:],
    ]


async def test_a_batch_refuses_each_undefined_record_before_sending_and_applies_the_rest_once(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    server.business_results.append({"code": "B14", "name": "no sub-statuses", "defLevel": "1", "children": []})
    records = mixed_records()
    report = await client.business_results.write_back_many(
        records, concurrency=4, journal=tmp_path / "j", check_definitions=True
    )
    assert sorted(o.data_id for o in report.succeeded) == list(range(1, 21))
    refused = {o.data_id: o.error for o in report.failed}
    assert sorted(refused) == [101, 102, 103, 104, 105, 106]
    assert all(isinstance(e, UndefinedResultError) for e in refused.values())
    summary = {k: (e.field, e.reason, e.suggestions[:1]) for k, e in refused.items()}  # type: ignore[union-attr]
    assert summary == {
        101: ("busi_result", UNDEFINED_RESULT, ("B14",)),
        102: ("busi_result", UNDEFINED_RESULT, ("B12",)),
        103: ("sub_status", NOT_ITS_SUB_STATUS, ("B01-1",)),
        104: ("sub_status", NOT_ITS_SUB_STATUS, ("B01-3",)),
        105: ("sub_status", NO_SUB_STATUSES, ()),
        106: ("busi_result", UNDEFINED_RESULT, ("B05",)),
    }
    assert sorted(sent_keys(server), key=int) == [str(i) for i in range(1, 21)]  # nothing refused was sent
    assert server.applied_counts() == {str(i): 1 for i in range(1, 21)}
    assert len(server.requests_to(DEFS)) == 1
    assert report.total == len(records)


async def test_fifty_workers_fetch_the_definitions_once_for_the_whole_batch(
    client: ISalesClient, server: FakeISales
) -> None:
    server.business_results = parents(120, children=2)  # three pages
    records = [
        Writeback(i, f"P{i % 120 + 1:03d}", sub_status=f"P{i % 120 + 1:03d}-{i % 2 + 1}") for i in range(1, 1001)
    ]
    report = await client.business_results.write_back_many(records, concurrency=50, check_definitions=True)
    assert len(report.succeeded) == 1000 and report.failed == []
    assert [r.query for r in server.requests_to(DEFS)] == [
        (("pageSize", "50"), ("pageNum", str(n))) for n in (1, 2, 3)
    ]  # one listing of three pages, for fifty workers and a thousand records


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_batch_whose_definitions_cannot_be_fetched_does_not_start(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "j"
    taken: list[int] = []

    def records():  # type: ignore[no-untyped-def]
        for i in range(1, 1001):
            taken.append(i)
            yield Writeback(i, "B01")

    async with make_client(sk="not-the-secret") as client:
        with pytest.raises(DefinitionsUnavailableError) as info:
            await client.business_results.write_back_many(records(), journal=path, check_definitions=True)
    assert isinstance(info.value.cause, AuthenticationError) and "not-the-secret" not in str(info.value)
    assert server.rejected_auth == 1  # the one fetch: not a refusal per record
    async with make_client(base_url=f"http://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(DefinitionsUnavailableError) as down:
            await client.business_results.write_back_many(records(), journal=path, check_definitions=True)
    assert isinstance(down.value.cause, ConnectError)
    assert not isinstance(down.value, BatchAbortedError)  # it never started, so there is no report
    assert taken == [] and server.requests_to(WB) == []
    assert not path.exists()  # no journal run was begun


async def test_a_record_refused_for_the_tenant_is_sent_once_the_tenant_defines_it(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    """The refusal is not a definite failure of the record: its journal row says not sent,
    so the same file run again after the tenant was fixed sends it, and only it."""
    path = tmp_path / "j"
    records = [Writeback(1, "B01"), Writeback(2, "B13"), Writeback(3, "B13", sub_status="B13-1"), Writeback(4, "B02")]
    first = await client.business_results.write_back_many(records, journal=path, check_definitions=True)
    assert sorted(o.data_id for o in first.failed) == [2, 3]
    with Journal(path, readonly=True) as journal:
        rows = {e.key: e for e in journal.entries()}
    assert {k: e.status for k, e in rows.items()} == {
        "1": Status.SUCCEEDED,
        "2": Status.NOT_SENT,
        "3": Status.NOT_SENT,
        "4": Status.SUCCEEDED,
    }
    assert rows["2"].error_type == "UndefinedResultError" and "'B13'" in (rows["2"].message or "")

    unchanged = await client.business_results.write_back_many(records, journal=path, check_definitions=True)
    assert sorted(o.data_id for o in unchanged.failed) == [2, 3]  # checked again (cached), still refused
    assert unchanged.skipped == {SKIP_SUCCEEDED: 2}

    server.business_results.append(
        {"code": "B13", "name": "new", "defLevel": "1", "children": [{"code": "B13-1", "name": "x", "defLevel": "2"}]}
    )
    await client.business_results.definitions(refresh=True)
    fixed = await client.business_results.write_back_many(records, journal=path, check_definitions=True)
    assert sorted(o.data_id for o in fixed.succeeded) == [2, 3] and fixed.failed == []
    assert fixed.skipped == {SKIP_SUCCEEDED: 2}
    assert server.applied_counts() == {"1": 1, "2": 1, "3": 1, "4": 1}


async def test_a_refused_record_leaves_what_the_journal_knew_of_it(client: ISalesClient, tmp_path: Path) -> None:
    """A record applied earlier whose mapping has since gone stale is refused, and its row
    still says applied (with the payload applied), not a failure."""
    path = tmp_path / "j"
    await client.business_results.write_back_many([Writeback(1, "B01", sub_status="B01-1")], journal=path)
    with Journal(path, readonly=True) as journal:
        (before,) = journal.entries()
    report = await client.business_results.write_back_many(
        [Writeback(1, "B01", sub_status="B01-x"), Writeback(1, "B02")], journal=path, check_definitions=True
    )
    assert [type(o.error).__name__ for o in report.failed] == ["UndefinedResultError", "DuplicateRecordError"]
    with Journal(path, readonly=True) as journal:
        (after,) = journal.entries()
    assert (after.status, after.record, after.fingerprint) == (before.status, before.record, before.fingerprint)


async def test_without_the_check_the_batch_sends_what_the_server_then_refuses(
    client: ISalesClient, server: FakeISales
) -> None:
    report = await client.business_results.write_back_many([Writeback(1, "B13"), Writeback(2, "B01")])
    assert [(o.data_id, getattr(o.error, "code", None)) for o in report.failed] == [(1, "0200001")]
    assert server.requests_to(DEFS) == [] and Counter(sent_keys(server)) == {"1": 1, "2": 1}


# -- the check and the fake read the same listing the same way (issue 19 review) --------------------------

ODD_LISTINGS: list[dict[str, Any]] = [
    {"code": "B01", "name": "a", "defLevel": "1", "children": [{"code": "B01-1", "name": "x", "defLevel": "2"}]},
    {"code": "B01", "name": "again", "defLevel": 1, "children": [{"code": "B01-9", "name": "y", "defLevel": "2"}]},
    {"code": "S9", "name": "a sub-result at the top", "defLevel": "2", "children": []},
    {"code": "S8", "name": "the same, as a number", "defLevel": 2, "children": []},
    {"code": "B03", "name": "children null", "defLevel": "1", "children": None},
]


@pytest.mark.parametrize("busi_result", ["B01", "S9", "S8", "B03", "B04", "B01-1"])
@pytest.mark.parametrize("sub_status", [None, "B01-1", "B01-9", "B02-1"])
def test_the_check_and_the_fake_server_accept_the_same_pairs(busi_result: str, sub_status: str | None) -> None:
    results = FakeISales(business_results=ODD_LISTINGS)
    definitions = Definitions(converter.structure(item, BusinessResult) for item in ODD_LISTINGS)
    children = results._sub_statuses_of(busi_result)
    fake_accepts = children is not None and (sub_status is None or sub_status in children)
    assert (definitions.refusal(busi_result, sub_status) is None) == fake_accepts


async def test_a_listing_without_any_level_1_code_is_no_definitions_and_is_not_cached(
    client: ISalesClient, server: FakeISales
) -> None:
    server.business_results = [{"code": "S9", "name": "a sub-result", "defLevel": "2", "children": []}]
    with pytest.raises(DefinitionsUnavailableError, match="lists no business result") as info:
        await client.business_results.write_back(1, "S9", check_definitions=True)
    assert info.value.cause is None and server.requests_to(WB) == []
    server.business_results = TENANT
    await client.business_results.write_back(1, "B01", sub_status="B01-1", check_definitions=True)
    assert sent_keys(server) == ["1"] and len(server.requests_to(DEFS)) == 2
