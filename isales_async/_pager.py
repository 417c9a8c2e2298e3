"""Async iteration over paged endpoints, with bounded concurrent prefetch.

:class:`Pager` is the one pager of every paged endpoint: a resource gives it
``fetch(page_num, page_size) -> Page``, what identifies an item, and the endpoint's page
size limit, and gets ``page``/``pages``/``iter`` that follow the stop rules of
:mod:`._paging`. Pages are judged and yielded strictly in order, so a page fetched ahead
of one that turns out short or repeated is never yielded; a short page without a
plausible total is held back until the next page shows whether it was the last. Prefetched pages run as asyncio
tasks that are cancelled and awaited when the iteration ends for any reason (the end,
an error, ``break``, ``aclose()``, cancellation), so no request outlives it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import attrs

from ._errors import PaginationError
from ._models import Page
from ._paging import Verdict, fetch_limit, is_repeat, judge_page
from ._validation import check_int_range

__all__ = ["DEFAULT_MAX_PAGES", "Pager", "iterate_items", "iterate_pages"]

DEFAULT_MAX_PAGES = 10_000

T = TypeVar("T")
Fetch = Callable[[int, int], Awaitable[Page[T]]]


@attrs.frozen
class Pager(Generic[T]):
    """One paged listing: how to fetch a page, what identifies an item, the page size limit.

    Arguments are validated when ``pages``/``iter`` are called, before anything is sent.
    """

    fetch: Fetch[T]
    key: Callable[[T], object]
    max_page_size: int

    async def page(self, page_num: int, page_size: int) -> Page[T]:
        """Fetch one page, as the server sent it (no stop rule applies to a single page)."""
        check_int_range("page_num", page_num, 1)
        check_int_range("page_size", page_size, 1, self.max_page_size)
        return await self.fetch(page_num, page_size)

    def pages(
        self, *, page_size: int, prefetch: int, max_items: int | None, start_page: int, max_pages: int
    ) -> AsyncGenerator[Page[T], None]:
        """Iterate pages in order, holding at most ``prefetch`` pages (fetched or in flight)."""
        check_int_range("page_size", page_size, 1, self.max_page_size)
        check_int_range("prefetch", prefetch, 1)
        check_int_range("start_page", start_page, 1)
        check_int_range("max_pages", max_pages, 1)
        if max_items is not None:
            check_int_range("max_items", max_items, 1)
        return iterate_pages(
            self.fetch,
            key=self.key,
            page_size=page_size,
            prefetch=prefetch,
            start_page=start_page,
            max_items=max_items,
            max_pages=max_pages,
        )

    def iter(
        self, *, page_size: int, prefetch: int, max_items: int | None, start_page: int, max_pages: int
    ) -> AsyncGenerator[T, None]:
        """Iterate every item across pages, in order, at most ``max_items`` (see :meth:`pages`)."""
        pages = self.pages(
            page_size=page_size, prefetch=prefetch, max_items=max_items, start_page=start_page, max_pages=max_pages
        )
        return iterate_items(pages, max_items)


async def iterate_pages(
    fetch: Fetch[T],
    *,
    key: Callable[[T], object],
    page_size: int,
    prefetch: int = 1,
    start_page: int = 1,
    max_items: int | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> AsyncGenerator[Page[T], None]:
    """Yield pages in order until the stop rules see the end; arguments are trusted (see :class:`Pager`)."""
    pending: collections.deque[tuple[int, asyncio.Future[Page[T]]]] = collections.deque()
    next_page = start_page
    limit: int | None = start_page  # the highest page worth fetching; None once nothing bounds it
    cap = start_page + max_pages - 1
    previous_items: Sequence[T] | None = None
    retried = False
    held: Page[T] | None = None  # a short page without a plausible total, until the next page says it was the last

    def refill(window: int) -> None:
        nonlocal next_page
        while len(pending) < window and next_page <= cap and (limit is None or next_page <= limit):
            pending.append((next_page, asyncio.ensure_future(fetch(next_page, page_size))))
            next_page += 1

    try:
        refill(1)
        while pending:
            page_num, task = pending[0]
            page = await task
            pending.popleft()
            repeats = is_repeat(previous_items, page.items, key)
            verdict = judge_page(
                page_num,
                page_size,
                len(page.items),
                page.total_count,
                repeats=repeats,
                retried=retried,
                after_short=None if held is None else len(held.items),
            )
            if verdict is Verdict.RETRY:
                pending.appendleft((page_num, asyncio.ensure_future(fetch(page_num, page_size))))
                retried = True
                continue
            if verdict is Verdict.LAST:
                for last in (held, page):
                    if last is not None and last.items:
                        yield last
                return
            previous_items, retried = page.items, False
            if verdict is Verdict.CONFIRM:
                held, limit = page, page_num + 1
                await _cancel_all(_drop_beyond(pending, limit))
                if not pending:  # past the cap too: this request can only end the list or raise
                    pending.append((limit, asyncio.ensure_future(fetch(limit, page_size))))
                    next_page = limit + 1
                continue
            limit = fetch_limit(
                page_num, page_size, len(page.items), page.total_count, start_page=start_page, max_items=max_items
            )
            if limit is not None and page_num >= limit:  # max_items is reached
                yield page
                return
            if page_num >= cap:
                raise PaginationError(f"stopped at the cap of {max_pages} pages with more to come")
            if limit is not None:  # the total may have shrunk under our prefetch
                await _cancel_all(_drop_beyond(pending, limit))
            refill(prefetch - 1)  # the page being yielded is the k-th held
            yield page
            refill(prefetch)
    finally:
        await _cancel_all([task for _, task in pending])


def _drop_beyond(
    pending: collections.deque[tuple[int, asyncio.Future[Page[T]]]], limit: int
) -> list[asyncio.Future[Page[T]]]:
    dropped = []
    while pending and pending[-1][0] > limit:
        dropped.append(pending.pop()[1])
    return dropped


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
