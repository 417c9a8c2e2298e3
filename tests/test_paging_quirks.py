"""Servers that page badly: the fake server's paging quirks seen on the wire, and the
client surviving each one on every paged endpoint: every item exactly once in order, or
a PaginationError, never a silently short (or padded) list."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from operator import attrgetter
from typing import Any

import attrs
import orjson
import pytest
import pytest_asyncio

from isales_async import ISalesClient, Page, PaginationError
from isales_async.testing import FakeISales, PagingQuirk, RecordedRequest

from .conftest import MakeClient
from .test_fake_server import PREFIX, send

LENGTH = 120  # every seed list: 50 + 50 + 20 at 50 a page


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeISales]:
    """A fake server whose four paged lists each hold 120 items."""
    async with FakeISales(obs_code_count=LENGTH, business_result_count=LENGTH, calls_per_campaign=LENGTH) as fake:
        fake.external_results = {
            str(def_id): {"defId": str(def_id), "displayResult": f"shown {def_id}", "resultCode": "", "obsCodes": []}
            for def_id in range(1000, 1000 + LENGTH)
        }
        yield fake


# -- the quirks themselves, seen on the wire ------------------------------------------------


async def raw_page(server: FakeISales, family: str, page_num: int, page_size: int) -> dict[str, Any]:
    """The JSON answer to one page of queryOBSResultCode (query string) or callresult (body)."""
    if family == "query":
        query = [("pageSize", str(page_size)), ("pageNum", str(page_num))]
        _, data = await send(server, "GET", f"{PREFIX}/1/queryOBSResultCode", query)
        data["items"] = [item["obsCode"] for item in data.pop("obsCodes")]
    else:
        body = orjson.dumps({"pageSize": page_size, "pageNum": page_num})
        _, data = await send(server, "POST", f"{PREFIX}/1/callresult/1001", body=body)
        data["items"] = [item["callId"] for item in data.pop("data")]
    assert data["resultCode"] == "0200000"
    return data


FAMILIES = ["query", "body"]  # queryOBSResultCode pages in the query string, callresult in the body


@pytest.mark.parametrize("family", FAMILIES)
async def test_without_a_quirk_pages_are_slices_with_the_list_total(server: FakeISales, family: str) -> None:
    pages = [await raw_page(server, family, n, 50) for n in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [50, 50, 20]
    assert {p["totalCount"] for p in pages} == {LENGTH}
    assert len({item for p in pages for item in p["items"]}) == sum(len(p["items"]) for p in pages)


@pytest.mark.parametrize("family", FAMILIES)
async def test_per_page_total_counts_the_page(server: FakeISales, family: str) -> None:
    server.paging = PagingQuirk.PER_PAGE_TOTAL
    first, last = await raw_page(server, family, 1, 50), await raw_page(server, family, 3, 40)
    assert (first["totalCount"], len(first["items"])) == (50, 50)
    assert (last["totalCount"], len(last["items"])) == (40, 40)
    assert (await raw_page(server, family, 4, 40))["totalCount"] == 0


@pytest.mark.parametrize("family", FAMILIES)
async def test_ignore_page_num_answers_page_one(server: FakeISales, family: str) -> None:
    server.paging = PagingQuirk.IGNORE_PAGE_NUM
    first = await raw_page(server, family, 1, 50)
    assert (await raw_page(server, family, 2, 50))["items"] == first["items"]
    assert (await raw_page(server, family, 7, 50))["items"] == first["items"]


def seed_keys(server: FakeISales, family: str) -> list[str]:
    if family == "query":
        return [code["obsCode"] for code in server.obs_codes]
    return [call["callId"] for call in server.campaign_calls["1001"]]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("quirk", "sizes"), [(PagingQuirk.SHORT_PAGE_ONCE, [49, 50, 50]), (PagingQuirk.SHORT_PAGE_ALWAYS, [49, 49, 49])]
)
async def test_short_page_two_lacks_its_last_item(
    server: FakeISales, family: str, quirk: PagingQuirk, sizes: list[int]
) -> None:
    server.paging = quirk
    assert len((await raw_page(server, family, 1, 50))["items"]) == 50
    answers = [await raw_page(server, family, 2, 50) for _ in sizes]
    assert [len(p["items"]) for p in answers] == sizes
    assert all(p["items"] == seed_keys(server, family)[50 : 50 + len(p["items"])] for p in answers)
    assert {p["totalCount"] for p in answers} == {LENGTH}


async def test_short_page_needs_a_full_page_two(server: FakeISales) -> None:
    server.paging = PagingQuirk.SHORT_PAGE_ALWAYS
    assert len((await raw_page(server, "body", 2, 100))["items"]) == 20  # the last page, already short


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("quirk", "total"),
    [(PagingQuirk.TOTAL_MISSING, "missing"), (PagingQuirk.TOTAL_NULL, None), (PagingQuirk.TOTAL_UNKNOWN, -1)],
)
async def test_total_missing_null_or_unknown(
    server: FakeISales, family: str, quirk: PagingQuirk, total: object
) -> None:
    server.paging = quirk
    page = await raw_page(server, family, 1, 50)
    assert page.get("totalCount", "missing") == total
    assert len(page["items"]) == 50


async def test_paging_is_a_constructor_option_too() -> None:
    async with FakeISales(paging=PagingQuirk.TOTAL_UNKNOWN) as server:
        assert (await raw_page(server, "query", 1, 10))["totalCount"] == -1


# -- the client against each quirk, on every paged endpoint -------------------------------


@attrs.frozen
class Listing:
    """One paged endpoint as a test drives it: the route, the iteration, the seed keys."""

    endpoint: str
    iterate: Callable[[ISalesClient, int], AsyncGenerator[Any, None]]
    first_page: Callable[[ISalesClient], Any]
    key: Callable[[Any], str]
    seed: Callable[[FakeISales], list[dict[str, Any]]]
    seed_key: str
    touch: str  # a field that is no key, for a server that changes data while it pages


LISTINGS = {
    "obs_result_codes": Listing(
        "queryOBSResultCode",
        lambda c, prefetch: c.obs_result_codes.iter(page_size=50, prefetch=prefetch),
        lambda c: c.obs_result_codes.page(page_size=50),
        attrgetter("obs_code"),
        lambda s: s.obs_codes,
        "obsCode",
        "obsCodeDesc",
    ),
    "business_results": Listing(
        "queryBusinessResults",
        lambda c, prefetch: c.business_results.iter(page_size=50, prefetch=prefetch),
        lambda c: c.business_results.page(page_size=50),
        attrgetter("code"),
        lambda s: s.business_results,
        "code",
        "name",
    ),
    "external_results": Listing(
        "queryOBSResults",
        lambda c, prefetch: c.external_results.iter(page_size=50, prefetch=prefetch),
        lambda c: c.external_results.page(page_size=50),
        attrgetter("def_id"),
        lambda s: list(s.external_results.values()),
        "defId",
        "displayResult",
    ),
    "call_results": Listing(
        "callresult",
        lambda c, prefetch: c.call_results.iter("1001", page_size=50, prefetch=prefetch),
        lambda c: c.call_results.page("1001", page_size=50),
        attrgetter("call_id"),
        lambda s: s.campaign_calls["1001"],
        "callId",
        "failCode",
    ),
}

# What each quirk must give: every item, or page 1 then a PaginationError; and how many
# requests it takes at prefetch 1, and the bounds at prefetch 3 (pages fetched ahead of a
# page that ends the list or raises may or may not have reached the server by then).
# Without a usable total, the short page 3 is the last only once the empty page 4 says so.
OUTCOMES: dict[PagingQuirk | None, tuple[str, int, tuple[int, int]]] = {
    None: ("all", 3, (3, 3)),
    PagingQuirk.PER_PAGE_TOTAL: ("all", 4, (4, 5)),
    PagingQuirk.IGNORE_PAGE_NUM: ("error", 2, (2, 3)),
    PagingQuirk.SHORT_PAGE_ONCE: ("all", 4, (4, 4)),
    PagingQuirk.SHORT_PAGE_ALWAYS: ("error", 3, (3, 4)),
    PagingQuirk.TOTAL_MISSING: ("all", 4, (4, 5)),
    PagingQuirk.TOTAL_NULL: ("all", 4, (4, 5)),
    PagingQuirk.TOTAL_UNKNOWN: ("all", 4, (4, 5)),
}


def quirk_id(value: object) -> str | None:
    """Test ids: a quirk by its value, no quirk as "none"; other parameters as pytest names them."""
    if value is None:
        return "none"
    return value.value if isinstance(value, PagingQuirk) else None


async def collect_keys(listing: Listing, client: ISalesClient, prefetch: int) -> tuple[list[str], Exception | None]:
    """The keys yielded in order, and the error that ended the iteration (if any)."""
    keys: list[str] = []
    try:
        async for item in listing.iterate(client, prefetch):
            keys.append(listing.key(item))
    except PaginationError as exc:
        return keys, exc
    return keys, None


@pytest.mark.parametrize("prefetch", [1, 3])
@pytest.mark.parametrize("quirk", list(OUTCOMES), ids=quirk_id)
@pytest.mark.parametrize("name", list(LISTINGS))
async def test_every_item_once_in_order_or_a_pagination_error(
    make_client: MakeClient, server: FakeISales, name: str, quirk: PagingQuirk | None, prefetch: int
) -> None:
    listing = LISTINGS[name]
    expected = [item[listing.seed_key] for item in listing.seed(server)]
    outcome, requests, bounds = OUTCOMES[quirk]
    server.paging = quirk
    async with make_client() as client:
        keys, error = await collect_keys(listing, client, prefetch)
        assert client._session.in_flight == 0
    if outcome == "all":
        assert (keys, error) == (expected, None)
    else:
        assert isinstance(error, PaginationError)
        assert keys == expected[:50]  # page 1, and nothing fetched after what turned out wrong
    sent = len(server.requests_to(listing.endpoint))
    low, high = (requests, requests) if prefetch == 1 else bounds
    assert low <= sent <= high


@pytest.mark.parametrize("prefetch", [1, 3])
@pytest.mark.parametrize("name", list(LISTINGS))
async def test_a_server_that_ignores_page_num_while_its_data_changes_raises(
    make_client: MakeClient, server: FakeISales, name: str, prefetch: int
) -> None:
    """Page 2 holds page 1's items with a field changed: the keys repeat, so it is a repeat."""
    listing = LISTINGS[name]
    expected = [item[listing.seed_key] for item in listing.seed(server)]

    def touch(request: RecordedRequest) -> None:
        for item in listing.seed(server):
            item[listing.touch] = f"changed by request {len(server.requests)}"

    server.paging = PagingQuirk.IGNORE_PAGE_NUM
    server.on_request.append(touch)
    async with make_client() as client:
        keys, error = await collect_keys(listing, client, prefetch)
    assert isinstance(error, PaginationError)
    assert keys == expected[:50]


@pytest.mark.parametrize(
    ("quirk", "total"),
    [
        (None, LENGTH),
        (PagingQuirk.PER_PAGE_TOTAL, 50),
        (PagingQuirk.TOTAL_MISSING, None),
        (PagingQuirk.TOTAL_NULL, None),
        (PagingQuirk.TOTAL_UNKNOWN, None),
    ],
    ids=quirk_id,
)
@pytest.mark.parametrize("name", list(LISTINGS))
async def test_page_total_count_is_none_when_the_server_gives_no_usable_total(
    client: ISalesClient, server: FakeISales, name: str, quirk: PagingQuirk | None, total: int | None
) -> None:
    server.paging = quirk
    page: Page[Any] = await LISTINGS[name].first_page(client)
    assert (page.total_count, len(page.items)) == (total, 50)


@pytest.mark.parametrize("prefetch", [1, 2, 4, 8])
@pytest.mark.parametrize(("length", "requests"), [(0, 1), (1, 1), (49, 1), (50, 2), (51, 2), (100, 2), (120, 3)])
@pytest.mark.parametrize("name", list(LISTINGS))
async def test_a_consistent_total_wastes_no_request(
    make_client: MakeClient, server: FakeISales, name: str, length: int, requests: int, prefetch: int
) -> None:
    """At 50 a page: 0 items 1 request, 100 items 2, 120 items 3, whatever the prefetch.

    50 items take 2: a full first page whose total is 50 could be a server counting the
    page itself, so only an empty page 2 proves the list complete.
    """
    listing = LISTINGS[name]
    seed = listing.seed(server)
    kept = seed[:length]
    if name == "external_results":
        server.external_results = {item["defId"]: item for item in kept}
    else:
        seed[:] = kept
    async with make_client() as client:
        keys, error = await collect_keys(listing, client, prefetch)
    assert (keys, error) == ([item[listing.seed_key] for item in kept], None)
    assert len(server.requests_to(listing.endpoint)) == requests
