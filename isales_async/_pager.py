"""Async iteration over paged endpoints, with bounded concurrent prefetch.

:class:`Pager` is the one pager of every paged endpoint: a resource gives it
``fetch(page_num, page_size) -> Page``, what identifies an item, and the endpoint's page
size limit, and gets ``page``/``pages``/``iter`` that follow the stop rules of
:mod:`._paging`. Pages are judged and yielded strictly in order, so a page fetched ahead
of one that turns out short or repeated is never yielded; a short page without a
plausible total is held back until the next page shows whether it was the last. With
``prefetch=1`` each page is awaited in the caller's own task; prefetched pages run as
asyncio tasks that are cancelled and awaited when the iteration ends for any reason (the
end, an error, ``break``, ``aclose()``, cancellation), so no request outlives it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
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

    def check_page(self, page_num: int, page_size: int) -> None:
        """Refuse a single page's arguments before anything is sent."""
        check_int_range("page_num", page_num, 1)
        check_int_range("page_size", page_size, 1, self.max_page_size)

    async def page(self, page_num: int, page_size: int) -> Page[T]:
        """Fetch one page, as the server sent it (no stop rule applies to a single page)."""
        self.check_page(page_num, page_size)
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


class _Step(enum.Enum):
    """What to do with a page that came back, once the stop rules have judged it."""

    RETRY = "retry"  # ask for the same page once more
    LAST = "last"  # yield the pages held and this one (those with items), then stop
    CONFIRM = "confirm"  # hold it; the next page (asked for even past the cap) says whether it was the last
    NEXT = "next"  # yield it, then go on to the next page


@attrs.define
class _Listing(Generic[T]):
    """The stop rules' state over one iteration, shared by the sequential and prefetching loops."""

    page_size: int
    start_page: int
    max_items: int | None
    max_pages: int
    limit: int | None  # the highest page worth fetching; None once nothing bounds it
    previous_items: Sequence[T] | None = None
    retried: bool = False
    held: Page[T] | None = None  # a short page without a plausible total, until the next page says it was the last

    @property
    def cap(self) -> int:
        return self.start_page + self.max_pages - 1

    def step(self, page_num: int, page: Page[T], key: Callable[[T], object]) -> _Step:
        """Judge page ``page_num`` and move on; :class:`PaginationError` when the server pages badly."""
        verdict = judge_page(
            page_num,
            self.page_size,
            len(page.items),
            page.total_count,
            repeats=is_repeat(self.previous_items, page.items, key),
            retried=self.retried,
            after_short=None if self.held is None else len(self.held.items),
        )
        if verdict is Verdict.RETRY:
            self.retried = True
            return _Step.RETRY
        if verdict is Verdict.LAST:
            return _Step.LAST
        self.previous_items, self.retried = page.items, False
        if verdict is Verdict.CONFIRM:
            self.held, self.limit = page, page_num + 1
            return _Step.CONFIRM
        self.limit = fetch_limit(
            page_num,
            self.page_size,
            len(page.items),
            page.total_count,
            start_page=self.start_page,
            max_items=self.max_items,
        )
        if self.limit is not None and page_num >= self.limit:  # max_items is reached
            return _Step.LAST
        if page_num >= self.cap:
            raise PaginationError(f"stopped at the cap of {self.max_pages} pages with more to come")
        return _Step.NEXT

    def last_pages(self, page: Page[T]) -> list[Page[T]]:
        """What a :attr:`_Step.LAST` yields: the held page and ``page``, those with items."""
        return [last for last in (self.held, page) if last is not None and last.items]


def iterate_pages(
    fetch: Fetch[T],
    *,
    key: Callable[[T], object],
    page_size: int,
    prefetch: int = 1,
    start_page: int = 1,
    max_items: int | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> AsyncGenerator[Page[T], None]:
    """Pages in order until the stop rules see the end; arguments are trusted (see :class:`Pager`)."""
    listing = _Listing[T](page_size, start_page, max_items, max_pages, limit=start_page)
    if prefetch == 1:
        return _sequentially(fetch, listing, key)
    return _prefetching(fetch, listing, key, prefetch)


async def _sequentially(
    fetch: Fetch[T], listing: _Listing[T], key: Callable[[T], object]
) -> AsyncGenerator[Page[T], None]:
    """``prefetch=1``: each page awaited in the caller's own task, no background task at all."""
    page_num = listing.start_page
    while True:
        page = await fetch(page_num, listing.page_size)
        step = listing.step(page_num, page, key)
        if step is _Step.RETRY:
            continue
        if step is _Step.LAST:
            for last in listing.last_pages(page):
                yield last
            return
        if step is _Step.NEXT:
            yield page
        page_num += 1


async def _prefetching(
    fetch: Fetch[T], listing: _Listing[T], key: Callable[[T], object], prefetch: int
) -> AsyncGenerator[Page[T], None]:
    """Up to ``prefetch`` pages held or in flight, as tasks cancelled and awaited at the end."""
    pending: collections.deque[tuple[int, asyncio.Future[Page[T]]]] = collections.deque()
    next_page = listing.start_page

    def refill(window: int) -> None:
        nonlocal next_page
        limit = listing.limit
        while len(pending) < window and next_page <= listing.cap and (limit is None or next_page <= limit):
            pending.append((next_page, asyncio.ensure_future(fetch(next_page, listing.page_size))))
            next_page += 1

    try:
        refill(1)
        while pending:
            page_num, task = pending[0]
            page = await task
            pending.popleft()
            step = listing.step(page_num, page, key)
            if step is _Step.RETRY:
                pending.appendleft((page_num, asyncio.ensure_future(fetch(page_num, listing.page_size))))
                continue
            if step is _Step.LAST:
                for last in listing.last_pages(page):
                    yield last
                return
            limit = listing.limit
            if limit is not None:  # the total may have shrunk under our prefetch
                await _cancel_all(_drop_beyond(pending, limit))
            if step is _Step.CONFIRM:
                if not pending and limit is not None:  # past the cap too: it can only end the list or raise
                    pending.append((limit, asyncio.ensure_future(fetch(limit, listing.page_size))))
                    next_page = limit + 1
                continue
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
    """Cancel ``tasks`` and wait until every one has ended, so that no request outlives the
    iteration; their errors are moot now.

    The caller may itself be cancelled while it waits: the wait goes on (the tasks are
    ending already) and that cancellation is raised once they have ended. ``asyncio.wait``
    never raises the tasks' own cancellations, so a ``CancelledError`` here is always the
    caller's, and swallowing it would let a cancelled consumer go on iterating.
    """
    for task in tasks:
        task.cancel()
    remaining = set(tasks)
    cancelled: asyncio.CancelledError | None = None
    while remaining:
        try:
            await asyncio.wait(remaining)
        except asyncio.CancelledError as exc:
            cancelled = exc
        remaining = {task for task in remaining if not task.done()}
    for task in tasks:
        if not task.cancelled():
            task.exception()
    if cancelled is not None:
        raise cancelled


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
