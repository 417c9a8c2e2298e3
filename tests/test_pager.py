"""Page planning (pure) and the async page iterator over an in-memory fetch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_async import Page, PaginationError
from isales_async._pager import iterate_items, iterate_pages
from isales_async._paging import is_last_page, is_repeat, last_useful_page


def test_is_last_page() -> None:
    assert is_last_page(3, 50, 120, 20)
    assert not is_last_page(2, 50, 120, 50)
    assert is_last_page(2, 50, 100, 50)
    assert is_last_page(1, 50, 120, 0)


def test_last_useful_page() -> None:
    assert last_useful_page(1, 50, 120) == 3
    assert last_useful_page(1, 50, 0) == 0
    assert last_useful_page(1, 50, 120, max_items=60) == 2
    assert last_useful_page(3, 10, 1000, max_items=5) == 3


def test_is_repeat() -> None:
    assert is_repeat([1, 2], [1, 2])
    assert not is_repeat([1, 2], [3])
    assert not is_repeat([], [])
    assert not is_repeat(None, [1])


class Source:
    """An in-memory paged endpoint whose total can change between pages."""

    def __init__(self, total: int, changes: dict[int, int] | None = None) -> None:
        self.items = list(range(total))
        self.changes = changes or {}
        self.calls: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def fetch(self, page_num: int, page_size: int) -> Page[int]:
        self.calls.append(page_num)
        self.started.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            if page_num in self.changes:
                self.items = list(range(self.changes[page_num]))
            chunk = self.items[(page_num - 1) * page_size : page_num * page_size]
            return Page(chunk, len(self.items), page_num, page_size)
        finally:
            self.in_flight -= 1


def items_of(fetch: Any, max_items: int | None = None, **kw: Any) -> AsyncGenerator[int, None]:
    return iterate_items(iterate_pages(fetch, max_items=max_items, **kw), max_items)


async def collect(source: Source, **kw: Any) -> list[int]:
    return [item async for item in items_of(source.fetch, **kw)]


@pytest.mark.parametrize(("total", "requests"), [(0, 1), (1, 1), (50, 1), (100, 2), (120, 3)])
@pytest.mark.parametrize("prefetch", [1, 4])
async def test_no_wasted_request(total: int, requests: int, prefetch: int) -> None:
    source = Source(total)
    assert await collect(source, page_size=50, prefetch=prefetch) == list(range(total))
    assert len(source.calls) == requests


async def test_max_items_stops_early_without_extra_pages() -> None:
    source = Source(1000)
    assert await collect(source, page_size=10, prefetch=3, max_items=25) == list(range(25))
    assert sorted(source.calls) == [1, 2, 3]


async def test_start_page() -> None:
    source = Source(30)
    assert await collect(source, page_size=10, start_page=2) == list(range(10, 30))


async def test_total_shrinking_under_prefetch_stops_cleanly() -> None:
    source = Source(200, changes={2: 60})
    items = await collect(source, page_size=20, prefetch=4)
    assert items[:20] == list(range(20))
    assert items[20:] == list(range(20, 60))


async def test_total_growing_is_followed() -> None:
    source = Source(40, changes={2: 90})
    assert await collect(source, page_size=20, prefetch=2) == list(range(90))


async def test_a_repeated_page_raises_instead_of_looping() -> None:
    async def stuck(page_num: int, page_size: int) -> Page[int]:
        return Page([1, 2], 1000, page_num, page_size)

    with pytest.raises(PaginationError, match="repeats"):
        [item async for item in items_of(stuck, page_size=2)]


async def test_the_page_cap_raises() -> None:
    with pytest.raises(PaginationError, match="cap"):
        await collect(Source(100), page_size=10, max_pages=3)


async def test_prefetch_bounds_pages_held() -> None:
    source = Source(500)
    held = []
    async for page in iterate_pages(source.fetch, page_size=10, prefetch=3):
        held.append(source.in_flight + 1)  # in flight plus the page we hold
        assert len(page.items) == 10
    assert max(held) <= 3
    assert source.max_in_flight <= 3


async def test_early_close_cancels_outstanding_fetches() -> None:
    source = Source(500)
    pages = iterate_pages(source.fetch, page_size=10, prefetch=4)
    async with contextlib.aclosing(pages):
        async for _ in pages:
            source.gate = asyncio.Event()  # later fetches now block until cancelled
            break
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_break_without_aclose_leaves_no_task() -> None:
    source = Source(500)
    source.gate = asyncio.Event()
    source.gate.set()
    async for _ in items_of(source.fetch, page_size=10, prefetch=4):
        source.gate = asyncio.Event()
        break
    with anyio.fail_after(5):
        while others := asyncio.all_tasks() - {asyncio.current_task()}:
            await asyncio.wait(others)
    assert source.in_flight == 0


async def test_cancelling_the_consumer_cancels_fetches() -> None:
    source = Source(500)

    async def consume() -> None:
        async for _ in items_of(source.fetch, page_size=10, prefetch=4):
            source.gate = asyncio.Event()

    task = asyncio.ensure_future(consume())
    with anyio.fail_after(5):
        await source.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.in_flight == 0


@given(
    total=st.integers(0, 400),
    page_size=st.integers(1, 50),
    prefetch=st.integers(1, 6),
    drift=st.dictionaries(st.integers(1, 20), st.integers(0, 400), max_size=3),
)
def test_pager_property_each_item_once_in_order(
    total: int, page_size: int, prefetch: int, drift: dict[int, int]
) -> None:
    """Over random totals and drift: items come in order, never twice, and every item of
    the final data that sits on a page fetched after the last change is there."""

    async def run() -> tuple[list[int], Source]:
        source = Source(total, drift)
        return await collect(source, page_size=page_size, prefetch=prefetch), source

    items, source = asyncio.run(run())
    assert items == sorted(set(items))
    if not drift:
        assert items == list(range(total))
        assert len(source.calls) == max(1, -(-total // page_size))
