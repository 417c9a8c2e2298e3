"""The stop rules as tables (pure), and the async pager over an in-memory endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import operator
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_async import Page, PaginationError
from isales_async._pager import iterate_items, iterate_pages
from isales_async._paging import Verdict, fetch_limit, is_repeat, judge_page, parse_total_count, plausible_total

# -- the rules, synchronously ----------------------------------------------------------------

MORE, LAST, RETRY, CONFIRM, ERROR = Verdict.MORE, Verdict.LAST, Verdict.RETRY, Verdict.CONFIRM, "PaginationError"

# (page_num, item count, totalCount, retried) at 50 a page -> the verdict
JUDGE_TABLE = [
    # an empty page ends it, whatever the total says
    (1, 0, 120, False, LAST),
    (2, 0, None, False, LAST),
    (3, 0, 500, False, LAST),
    # a full page never ends it without a plausible total that is reached
    (1, 50, None, False, MORE),
    (2, 50, None, False, MORE),
    (1, 50, 120, False, MORE),
    (2, 50, 120, False, MORE),
    (2, 50, 100, False, LAST),
    (3, 50, 150, False, LAST),
    (1, 50, 50, False, MORE),  # a full first page with a total of one page: maybe its own count
    (1, 50, 30, False, MORE),
    (2, 50, 50, False, MORE),  # the total is below the items seen: not believed
    (3, 50, 100, False, MORE),
    (2, 50, 100, True, LAST),  # the answer to a retry is judged like any other
    (2, 50, 120, True, MORE),
    # a short page: the end when it reaches a plausible total; without one, the end
    # only if the next page is empty
    (3, 20, 120, False, LAST),
    (1, 12, 12, False, LAST),
    (3, 20, None, False, CONFIRM),
    (3, 20, 20, False, CONFIRM),  # its own count
    (3, 20, 60, False, CONFIRM),  # below the items seen
    (1, 12, None, False, CONFIRM),
    # a short page before a plausible total: once more, then an error
    (2, 49, 120, False, RETRY),
    (2, 49, 120, True, ERROR),
    (1, 12, 30, False, RETRY),
    (1, 12, 30, True, ERROR),
    (3, 19, 120, False, RETRY),
    (2, 0, 120, True, ERROR),  # empty when asked again: the items seen the first time are not the end
    (3, 0, 100, True, LAST),  # empty when asked again, and the total now ends before it
]


@pytest.mark.parametrize(("page_num", "count", "total", "retried", "verdict"), JUDGE_TABLE)
def test_judge_page(page_num: int, count: int, total: int | None, retried: bool, verdict: object) -> None:
    if verdict == ERROR:
        with pytest.raises(PaginationError, match=f"page {page_num} came back short twice: {count} of 50"):
            judge_page(page_num, 50, count, total, repeats=False, retried=retried)
    else:
        assert judge_page(page_num, 50, count, total, repeats=False, retried=retried) is verdict


@pytest.mark.parametrize(("count", "total"), [(50, 120), (50, None), (20, 120), (20, 20), (1, None)])
@pytest.mark.parametrize("retried", [False, True])
def test_a_repeated_page_raises_at_once(count: int, total: int | None, retried: bool) -> None:
    with pytest.raises(PaginationError, match="page 2 repeats page 1: the server ignores pageNum"):
        judge_page(2, 50, count, total, repeats=True, retried=retried)


def test_an_empty_page_is_no_repeat() -> None:
    assert not is_repeat([], [], str)
    assert judge_page(2, 50, 0, 120, repeats=False, retried=False) is LAST


@pytest.mark.parametrize(
    ("previous", "current", "repeats"),
    [
        (None, ["a"], False),
        (["a", "b"], ["a", "b"], True),
        (["a", "b"], ["c", "d"], False),
        (["a", "b"], ["b", "a"], True),  # the same rows in another order: pageNum ignored all the same
        (["a", "a", "b"], ["a", "b", "b"], False),
        (["a", "b"], ["a"], False),
        (["a"], [], False),
    ],
)
def test_is_repeat_compares_keys(previous: list[str] | None, current: list[str], repeats: bool) -> None:
    assert is_repeat(previous, current, str.upper) is repeats


def test_is_repeat_ignores_what_is_no_key() -> None:
    key = operator.itemgetter("id")
    assert is_repeat([{"id": 1, "status": 5}], [{"id": 1, "status": 6}], key)
    assert not is_repeat([{"id": 1}], [{"id": 2}], key)


def test_is_repeat_compares_an_item_without_a_key_whole() -> None:
    key = operator.itemgetter("id")
    assert not is_repeat([{"id": None, "n": 1}], [{"id": None, "n": 2}], key)
    assert is_repeat([{"id": None, "n": 1}], [{"id": None, "n": 1}], key)


def test_is_repeat_compares_unhashable_items_without_a_key_in_any_order() -> None:
    key = operator.itemgetter("id")
    first, second = {"id": None, "n": [1]}, {"id": None, "n": [2]}
    assert is_repeat([first, second], [second, first], key)
    assert not is_repeat([first, second], [second, second], key)


@pytest.mark.parametrize(("count", "total"), [(0, None), (0, 120), (0, 5)])
def test_after_a_short_page_without_a_total_an_empty_page_ends_the_list(count: int, total: int | None) -> None:
    assert judge_page(4, 50, count, total, repeats=False, retried=False, after_short=20) is LAST


@pytest.mark.parametrize(("count", "total"), [(1, None), (50, None), (50, 1000), (30, 180)])
def test_after_a_short_page_without_a_total_a_page_with_items_raises(count: int, total: int | None) -> None:
    with pytest.raises(PaginationError, match=rf"page 3 came back short \(20 of 50 items\).*page 4 has {count} items"):
        judge_page(4, 50, count, total, repeats=False, retried=False, after_short=20)


def test_a_page_after_a_short_one_that_repeats_it_is_reported_as_a_repeat() -> None:
    with pytest.raises(PaginationError, match="page 2 repeats page 1"):
        judge_page(2, 50, 20, None, repeats=True, retried=False, after_short=20)


def test_a_retry_that_is_short_without_a_total_raises() -> None:
    with pytest.raises(PaginationError, match="short twice: 30 of 50 items, the second time without a usable"):
        judge_page(2, 50, 30, None, repeats=False, retried=True)


def test_the_short_twice_error_names_the_missing_items() -> None:
    with pytest.raises(PaginationError, match=r"49 of 50 items, with totalCount 120 \(items 100-100 are missing\)"):
        judge_page(2, 50, 49, 120, repeats=False, retried=True)


@pytest.mark.parametrize(
    ("page_num", "count", "total", "believed"),
    [
        (1, 50, None, None),
        (1, 50, 50, None),
        (1, 50, 51, 51),
        (1, 49, 49, 49),
        (1, 49, 48, None),
        (2, 50, 100, 100),
        (2, 50, 99, None),
        (2, 1, 51, 51),
        (2, 1, 50, None),
        (3, 50, 10_000, 10_000),
    ],
)
def test_plausible_total(page_num: int, count: int, total: int | None, believed: int | None) -> None:
    assert plausible_total(page_num, 50, count, total) == believed


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (None, None),
        ("", None),
        (-1, None),
        (-7, None),
        ("-1", None),
        (1.5, None),
        (float("inf"), None),
        (0, 0),
        (120, 120),
        (120.0, 120),
        ("120", 120),
        (" 7 ", 7),
    ],
)
def test_parse_total_count(raw: object, parsed: int | None) -> None:
    assert parse_total_count(raw) == parsed


@pytest.mark.parametrize("raw", ["many", "1.5", True, [120], {"n": 1}])
def test_a_total_that_is_not_a_number_at_all_is_a_value_error(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_total_count(raw)


@pytest.mark.parametrize(
    ("page_num", "page_size", "count", "total", "start_page", "max_items", "limit"),
    [
        (1, 50, 50, 120, 1, None, 3),
        (1, 50, 50, 100, 1, None, 2),
        (1, 50, 50, 50, 1, None, 2),  # one page more tells a one-page list from a page count
        (1, 50, 50, None, 1, None, None),
        (2, 50, 50, 50, 1, None, None),  # below the items seen: bounds nothing
        (2, 20, 20, 60, 1, None, 3),
        (1, 50, 50, 120, 1, 60, 2),
        (1, 50, 50, None, 1, 60, 2),
        (3, 10, 10, 1000, 3, 5, 3),
    ],
)
def test_fetch_limit(
    page_num: int, page_size: int, count: int, total: int | None, start_page: int, max_items: int | None, limit: int
) -> None:
    assert fetch_limit(page_num, page_size, count, total, start_page=start_page, max_items=max_items) == limit


# -- the pager over an in-memory endpoint --------------------------------------------------


class Quirk(enum.Enum):
    PER_PAGE_TOTAL = "per-page total"
    NO_TOTAL = "no total"
    SHORT_ONCE = "short once"
    SHORT_ALWAYS = "short always"
    IGNORE_PAGE_NUM = "ignore pageNum"


class Source:
    """An in-memory paged endpoint whose total can change between pages, and that can misbehave."""

    def __init__(
        self, total: int, changes: dict[int, int] | None = None, quirk: Quirk | None = None, quirk_page: int = 2
    ) -> None:
        self.items = list(range(total))
        self.changes = changes or {}
        self.quirk = quirk
        self.quirk_page = quirk_page
        self.calls: list[int] = []
        self.requested = 0
        self.running: set[int] = set()  # the pages whose fetch has started and not ended
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None
        self.gate_from = 1  # the gate holds the fetches of this page and later ones
        self.started = asyncio.Event()

    def fetch(self, page_num: int, page_size: int) -> Coroutine[Any, Any, Page[int]]:
        self.requested += 1  # counted when the pager asks, before the fetch runs
        return self._fetch(page_num, page_size)

    async def _fetch(self, page_num: int, page_size: int) -> Page[int]:
        self.calls.append(page_num)
        self.started.set()
        self.running.add(page_num)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None and page_num >= self.gate_from:
                await self.gate.wait()
            await asyncio.sleep(0)
            if page_num in self.changes:
                self.items = list(range(self.changes[page_num]))
            return self.answer(page_num, page_size)
        finally:
            self.in_flight -= 1
            self.running.discard(page_num)

    def answer(self, page_num: int, page_size: int) -> Page[int]:
        if self.quirk is Quirk.IGNORE_PAGE_NUM:
            page_num = 1
        chunk = self.items[(page_num - 1) * page_size : page_num * page_size]
        short = self.quirk is Quirk.SHORT_ALWAYS or (self.quirk is Quirk.SHORT_ONCE and self.calls.count(page_num) == 1)
        if short and page_num == self.quirk_page and len(chunk) == page_size > 1:
            chunk = chunk[:-1]
        total: int | None = len(self.items)
        if self.quirk is Quirk.PER_PAGE_TOTAL:
            total = len(chunk)
        elif self.quirk is Quirk.NO_TOTAL:
            total = None
        return Page(chunk, total, page_num, page_size)


def identity(item: int) -> object:
    return item


def items_of(fetch: Any, max_items: int | None = None, **kw: Any) -> AsyncGenerator[int, None]:
    return iterate_items(iterate_pages(fetch, key=identity, max_items=max_items, **kw), max_items)


async def collect(source: Source, **kw: Any) -> list[int]:
    return [item async for item in items_of(source.fetch, **kw)]


@pytest.mark.parametrize(
    ("total", "requests"), [(0, 1), (1, 1), (49, 1), (50, 2), (51, 2), (99, 2), (100, 2), (120, 3), (150, 3)]
)
@pytest.mark.parametrize("prefetch", [1, 2, 4, 8])
async def test_no_wasted_request_when_the_total_is_consistent(total: int, requests: int, prefetch: int) -> None:
    source = Source(total)
    assert await collect(source, page_size=50, prefetch=prefetch) == list(range(total))
    assert len(source.calls) == requests


async def test_max_items_stops_early_without_extra_pages() -> None:
    source = Source(1000)
    assert await collect(source, page_size=10, prefetch=3, max_items=25) == list(range(25))
    assert sorted(source.calls) == [1, 2, 3]


async def test_max_items_without_a_total_stops_early_too() -> None:
    source = Source(1000, quirk=Quirk.NO_TOTAL)
    assert await collect(source, page_size=10, prefetch=3, max_items=25) == list(range(25))
    assert sorted(source.calls) == [1, 2, 3]


async def test_start_page() -> None:
    source = Source(30)
    assert await collect(source, page_size=10, start_page=2) == list(range(10, 30))
    assert source.calls == [2, 3]


async def test_total_shrinking_under_prefetch_stops_cleanly() -> None:
    source = Source(200, changes={2: 60})
    items = await collect(source, page_size=20, prefetch=4)
    assert items == list(range(60))
    assert source.in_flight == 0


async def test_pages_dropped_when_the_total_shrinks_are_over_before_the_next_page() -> None:
    source = Source(200, changes={2: 60})
    source.gate, source.gate_from = asyncio.Event(), 5  # page 5 (fetched ahead) never answers
    running_at: dict[int, set[int]] = {}
    async for page in iterate_pages(source.fetch, key=identity, page_size=20, prefetch=4):
        running_at[page.page_num] = set(source.running)
    assert sorted(running_at) == [1, 2, 3]
    assert 4 not in running_at[2] and 5 not in running_at[2]  # beyond the new total: cancelled and awaited
    assert source.running == set()


async def test_total_growing_is_followed() -> None:
    source = Source(40, changes={2: 90})
    assert await collect(source, page_size=20, prefetch=2) == list(range(90))


async def test_a_short_page_before_the_total_is_asked_for_once_more() -> None:
    source = Source(120, quirk=Quirk.SHORT_ONCE)
    assert await collect(source, page_size=50) == list(range(120))
    assert source.calls == [1, 2, 2, 3]


@pytest.mark.parametrize("prefetch", [1, 3])
@pytest.mark.parametrize(("total", "requests"), [(0, 1), (20, 2), (50, 2), (120, 4), (150, 4)])
async def test_without_a_total_the_last_page_is_proven_by_an_empty_one(
    total: int, requests: int, prefetch: int
) -> None:
    source = Source(total, quirk=Quirk.NO_TOTAL)
    assert await collect(source, page_size=50, prefetch=prefetch) == list(range(total))
    assert set(range(1, requests + 1)) <= set(source.calls)
    if prefetch == 1:
        assert len(source.calls) == requests


class ShortMiddlePage(Source):
    """No total, and page 2 lacks its last item (a server that loses a row in the middle)."""

    def answer(self, page_num: int, page_size: int) -> Page[int]:
        page = super().answer(page_num, page_size)
        return Page(page.items[:-1] if page_num == 2 else page.items, None, page_num, page_size)


@pytest.mark.parametrize("prefetch", [1, 2, 5])
async def test_a_short_middle_page_without_a_total_raises_and_is_never_yielded(prefetch: int) -> None:
    source = ShortMiddlePage(120)
    yielded: list[int] = []
    with pytest.raises(PaginationError, match="page 2 came back short"):
        async for page in iterate_pages(source.fetch, key=identity, page_size=50, prefetch=prefetch):
            yielded.append(page.page_num)
    assert yielded == [1]
    assert source.in_flight == 0


async def test_a_short_page_at_the_cap_without_a_total_is_confirmed_past_it() -> None:
    source = Source(70, quirk=Quirk.NO_TOTAL)
    assert await collect(source, page_size=50, max_pages=2) == list(range(70))
    assert source.calls == [1, 2, 3]


async def test_a_short_page_that_reaches_max_items_is_still_confirmed() -> None:
    source = ShortMiddlePage(120)
    with pytest.raises(PaginationError, match="page 2 came back short"):
        await collect(source, page_size=50, max_items=90)
    assert source.calls == [1, 2, 3]


async def test_a_short_page_asked_again_and_empty_raises() -> None:
    class EmptyWhenAskedAgain(Source):
        def answer(self, page_num: int, page_size: int) -> Page[int]:
            page = super().answer(page_num, page_size)
            if page_num == 2:
                return Page(page.items[:-1] if self.calls.count(2) == 1 else [], page.total_count, 2, page_size)
            return page

    source = EmptyWhenAskedAgain(120)
    with pytest.raises(PaginationError, match="page 2 came back short twice: 0 of 50"):
        await collect(source, page_size=50)
    assert source.calls == [1, 2, 2]


async def test_a_server_ignoring_page_num_in_no_fixed_order_raises_at_page_two() -> None:
    class Shuffled(Source):
        def answer(self, page_num: int, page_size: int) -> Page[int]:
            page = super().answer(1, page_size)
            return Page(page.items[::-1] if len(self.calls) % 2 == 0 else page.items, 1000, page_num, page_size)

    source = Shuffled(1000)
    with pytest.raises(PaginationError, match="page 2 repeats page 1"):
        await collect(source, page_size=10)
    assert source.calls == [1, 2]


async def test_a_repeated_page_raises_instead_of_looping() -> None:
    source = Source(1000, quirk=Quirk.IGNORE_PAGE_NUM)
    seen: list[int] = []
    with pytest.raises(PaginationError, match="page 2 repeats page 1"):
        async for item in items_of(source.fetch, page_size=2):
            seen.append(item)
    assert (seen, source.calls) == ([0, 1], [1, 2])


async def test_a_repeat_is_found_by_keys_when_the_data_changes() -> None:
    answers = 0

    async def stamped(page_num: int, page_size: int) -> Page[tuple[int, int]]:
        nonlocal answers
        answers += 1
        return Page([(key, answers) for key in range(page_size)], 1000, page_num, page_size)

    pages = iterate_pages(stamped, key=lambda item: item[0], page_size=2)
    with pytest.raises(PaginationError, match="repeats"):
        [page async for page in pages]
    assert answers == 2


async def test_the_page_cap_raises() -> None:
    with pytest.raises(PaginationError, match="cap of 3 pages"):
        await collect(Source(100), page_size=10, max_pages=3)


@pytest.mark.parametrize("quirk", [Quirk.SHORT_ALWAYS, Quirk.IGNORE_PAGE_NUM])
@pytest.mark.parametrize("prefetch", [2, 4])
async def test_pages_fetched_ahead_of_a_bad_page_are_never_yielded(quirk: Quirk, prefetch: int) -> None:
    source = Source(1000, quirk=quirk)
    yielded: list[int] = []
    with pytest.raises(PaginationError):
        async for page in iterate_pages(source.fetch, key=identity, page_size=10, prefetch=prefetch):
            yielded.append(page.page_num)
    assert yielded == [1]
    assert max(source.calls) == 1 + prefetch  # fetched ahead while page 1 was held, none after
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_an_error_leaves_no_fetch_in_flight() -> None:
    source = Source(1000, quirk=Quirk.SHORT_ALWAYS)
    source.gate, source.gate_from = asyncio.Event(), 3  # pages 3 and later never answer
    yielded = []
    with pytest.raises(PaginationError, match="page 2 came back short twice"):
        async for page in iterate_pages(source.fetch, key=identity, page_size=10, prefetch=4):
            yielded.append(page.page_num)
    assert (yielded, sorted(source.calls)) == ([1], [1, 2, 2, 3, 4, 5])
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("quirk", [None, Quirk.NO_TOTAL])
@pytest.mark.parametrize("prefetch", [1, 3])
async def test_prefetch_bounds_pages_held(quirk: Quirk | None, prefetch: int) -> None:
    source = Source(500, quirk=quirk)
    held = []
    async for page in iterate_pages(source.fetch, key=identity, page_size=10, prefetch=prefetch):
        held.append(source.requested - len(held))  # asked for and not yet handed over, this one included
        assert len(page.items) == 10
    assert max(held) == prefetch
    assert source.max_in_flight == prefetch


@pytest.mark.parametrize("quirk", [None, Quirk.NO_TOTAL, Quirk.SHORT_ONCE])
async def test_prefetch_one_fetches_in_the_callers_own_task(quirk: Quirk | None) -> None:
    """With ``prefetch=1`` nothing runs in the background: every fetch, a retried one
    included, runs in the task that iterates."""
    source = Source(95, quirk=quirk)
    tasks = []
    real_fetch = source._fetch

    async def fetch(page_num: int, page_size: int) -> Page[int]:
        tasks.append(asyncio.current_task())
        return await real_fetch(page_num, page_size)

    source._fetch = fetch  # type: ignore[method-assign]
    items = [item async for item in items_of(source.fetch, page_size=10, prefetch=1)]
    assert items == list(range(95))
    assert set(tasks) == {asyncio.current_task()}
    assert len(tasks) == len(source.calls) >= 10


async def test_early_close_cancels_outstanding_fetches() -> None:
    source = Source(500)
    pages = iterate_pages(source.fetch, key=identity, page_size=10, prefetch=4)
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


async def test_a_consumer_cancelled_while_the_pager_drops_prefetches_stays_cancelled() -> None:
    """The total shrinks under the prefetch, and while the pager waits for the pages it
    cancels to end, the consumer is cancelled: the iteration ends there, cancelled, instead
    of going on as if the cancellation had been one of the dropped pages'."""
    source = Source(100, changes={2: 30})  # page 2 tells 30 items: pages 4 and 5 are not wanted
    source.gate, source.gate_from = asyncio.Event(), 4  # pages 4 and later never answer
    consumer: asyncio.Future[None] | None = None
    real_fetch = source._fetch

    async def fetch(page_num: int, page_size: int) -> Page[int]:
        try:
            return await real_fetch(page_num, page_size)
        except asyncio.CancelledError:
            assert consumer is not None
            consumer.cancel()  # the pager is awaiting this dropped page now
            raise

    source._fetch = fetch  # type: ignore[method-assign]
    seen: list[int] = []

    async def consume() -> None:
        async for item in items_of(source.fetch, page_size=10, prefetch=4):
            seen.append(item)

    consumer = asyncio.ensure_future(consume())
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert consumer.cancelled()
    assert seen == list(range(10))  # page 2 came back, but the consumer was gone before it was yielded
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


def requests_for(total: int, page_size: int) -> int:
    """The requests a consistent total takes: one per page, and one more after a full single page."""
    return max(1, -(-total // page_size)) + (total == page_size)


@given(
    total=st.integers(0, 400),
    page_size=st.integers(1, 50),
    prefetch=st.integers(1, 6),
    drift=st.dictionaries(st.integers(1, 20), st.integers(0, 400), max_size=3),
)
def test_pager_property_each_item_once_in_order(
    total: int, page_size: int, prefetch: int, drift: dict[int, int]
) -> None:
    """Over random totals and drift: items come in order, never twice, with no error; with
    no drift they are all there, in the promised number of requests."""

    async def run() -> tuple[list[int], Source]:
        source = Source(total, drift)
        return await collect(source, page_size=page_size, prefetch=prefetch), source

    items, source = asyncio.run(run())
    assert items == sorted(set(items))
    if not drift:
        assert items == list(range(total))
        assert len(source.calls) == requests_for(total, page_size)


@given(
    total=st.integers(0, 300),
    page_size=st.integers(1, 50),
    prefetch=st.integers(1, 6),
    quirk=st.sampled_from(Quirk),
    quirk_page=st.integers(1, 8),
)
def test_pager_property_a_quirky_server_gives_every_item_or_an_error(
    total: int, page_size: int, prefetch: int, quirk: Quirk, quirk_page: int
) -> None:
    """Whatever the quirk: every item exactly once in order, or a PaginationError after
    whole pages of the list; only a server that really fails (a page short every time, or
    pageNum ignored on a list of a full page or more) gets the error."""

    async def run() -> tuple[list[int], PaginationError | None]:
        source = Source(total, quirk=quirk, quirk_page=quirk_page)
        items: list[int] = []
        try:
            async for item in items_of(source.fetch, page_size=page_size, prefetch=prefetch):
                items.append(item)
        except PaginationError as exc:
            return items, exc
        return items, None

    items, error = asyncio.run(run())
    if error is None:
        assert items == list(range(total))
    else:
        assert items == list(range(len(items))) and len(items) % page_size == 0
    fails = (quirk is Quirk.SHORT_ALWAYS and page_size > 1 and total >= quirk_page * page_size) or (
        quirk is Quirk.IGNORE_PAGE_NUM and total >= page_size
    )
    assert (error is not None) == fails
