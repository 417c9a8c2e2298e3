"""Async iteration over paged endpoints, with bounded concurrent prefetch.

A resource supplies ``fetch(page_num, page_size) -> Page``; this module follows the
plan from :mod:`._paging`. Prefetched pages run as asyncio tasks that are cancelled and
awaited when the consumer stops early (``break``, ``aclose()``, cancellation), so no
request outlives the iteration.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from ._errors import PaginationError
from ._models import Page
from ._paging import is_last_page, is_repeat, last_useful_page
from ._validation import check_int_range

__all__ = ["DEFAULT_MAX_PAGES", "iterate_items", "iterate_pages"]

DEFAULT_MAX_PAGES = 10_000

T = TypeVar("T")


async def iterate_pages(
    fetch: Callable[[int, int], Awaitable[Page[T]]],
    *,
    page_size: int,
    prefetch: int = 1,
    start_page: int = 1,
    max_items: int | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> AsyncGenerator[Page[T], None]:
    """Yield pages in order, holding at most ``prefetch`` pages (fetched or in flight)."""
    check_int_range("prefetch", prefetch, 1)
    check_int_range("start_page", start_page, 1)
    check_int_range("max_pages", max_pages, 1)
    if max_items is not None:
        check_int_range("max_items", max_items, 1)
    pending: collections.deque[tuple[int, asyncio.Future[Page[T]]]] = collections.deque()
    next_page = start_page
    limit = start_page  # the highest page worth fetching; known once a page tells the total
    cap = start_page + max_pages - 1
    previous: Page[T] | None = None

    def refill(window: int) -> None:
        nonlocal next_page
        while len(pending) < window and next_page <= min(limit, cap):
            pending.append((next_page, asyncio.ensure_future(fetch(next_page, page_size))))
            next_page += 1

    try:
        refill(1)
        while pending:
            page_num, task = pending[0]
            page = await task
            pending.popleft()
            if previous is not None and is_repeat(previous.items, page.items):
                raise PaginationError(f"page {page_num} repeats page {page_num - 1}: the server ignores pageNum")
            previous = page
            limit = last_useful_page(start_page, page_size, page.total_count, max_items)
            if is_last_page(page_num, page_size, page.total_count, len(page.items)) or page_num >= limit:
                if page.items:
                    yield page
                return
            if page_num >= cap:
                raise PaginationError(f"stopped at the cap of {max_pages} pages with more reported")
            while pending and pending[-1][0] > limit:  # the total shrank under our prefetch
                pending.pop()[1].cancel()
            refill(prefetch - 1)  # the page being yielded is the k-th held
            yield page
            refill(prefetch)
    finally:
        await _cancel_all([task for _, task in pending])


async def _cancel_all(tasks: list[asyncio.Future[Page[T]]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        # Awaited so that no request outlives the iteration; their errors are moot now.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()


async def iterate_items(pages: AsyncGenerator[Page[T], None], max_items: int | None = None) -> AsyncGenerator[T, None]:
    """Yield the items of ``pages`` in order, at most ``max_items``; closing it closes ``pages``."""
    count = 0
    async with contextlib.aclosing(pages):
        async for page in pages:
            for item in page.items:
                yield item
                count += 1
                if max_items is not None and count >= max_items:
                    return
