"""Servers that page badly: the fake server's paging quirks, seen on the wire."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from isales_async.testing import FakeISales, PagingQuirk

from .test_fake_server import PREFIX, send

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


FAMILIES = {"query": 120, "body": 250}  # the seed list's length on each


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_without_a_quirk_pages_are_slices_with_the_list_total(server: FakeISales, family: str) -> None:
    pages = [await raw_page(server, family, n, 50) for n in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [50, 50, 50 if family == "body" else 20]
    assert {p["totalCount"] for p in pages} == {FAMILIES[family]}
    assert len({item for p in pages for item in p["items"]}) == sum(len(p["items"]) for p in pages)


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_per_page_total_counts_the_page(server: FakeISales, family: str) -> None:
    server.paging = PagingQuirk.PER_PAGE_TOTAL
    first, last = await raw_page(server, family, 1, 50), await raw_page(server, family, 3, 40)
    assert (first["totalCount"], len(first["items"])) == (50, 50)
    assert (last["totalCount"], len(last["items"])) == (40, 40)
    assert (await raw_page(server, family, 4, 40))["totalCount"] == (40 if family == "body" else 0)  # 250 or 120


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_ignore_page_num_answers_page_one(server: FakeISales, family: str) -> None:
    server.paging = PagingQuirk.IGNORE_PAGE_NUM
    first = await raw_page(server, family, 1, 50)
    assert (await raw_page(server, family, 2, 50))["items"] == first["items"]
    assert (await raw_page(server, family, 7, 50))["items"] == first["items"]


def seed_keys(server: FakeISales, family: str) -> list[str]:
    if family == "query":
        return [code["obsCode"] for code in server.obs_codes]
    return [call["callId"] for call in server.campaign_calls["1001"]]


@pytest.mark.parametrize("family", list(FAMILIES))
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
    assert {p["totalCount"] for p in answers} == {FAMILIES[family]}


async def test_short_page_needs_a_full_page_two(server: FakeISales) -> None:
    server.paging = PagingQuirk.SHORT_PAGE_ALWAYS
    assert len((await raw_page(server, "body", 2, 200))["items"]) == 50  # the last page of 250, already short


@pytest.mark.parametrize("family", list(FAMILIES))
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
