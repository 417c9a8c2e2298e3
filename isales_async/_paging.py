"""The stop rules of paged listings and the prefetch plan, as pure functions.

Pagination stops only on evidence that the list is complete, because the seed pages leave
room for servers that count differently (``totalCount`` is "the total in the returned
list", which a server may read as the count of *this page*) or that page badly:

- An empty page is the end.
- A page whose item keys equal the previous page's, in any order, means the server
  ignores ``pageNum``: :class:`PaginationError` at once (keys, not whole items, so data
  that changes while we page cannot hide the repeat; as a set, since a server paging by
  an unordered query returns the same rows in another order).
- A full page is the end only when ``totalCount`` is plausible and reached.
- A short page (fewer items than ``pageSize``) that reaches a plausible total is the end.
  Before a plausible total it is asked for again once; short again (or empty), it raises
  :class:`PaginationError`. A short page with no plausible total proves nothing either
  way: the next page is asked for, and only an empty one makes the short page the last;
  one with items means the short page was in the middle: :class:`PaginationError`.

A total is *plausible* for a page when it is known and at least the number of items up
to the end of that page, and, when the first page is full, larger than one page (a
server counting the page itself would otherwise end every listing after page 1). It is
re-read on every page, since totals drift while we page. So 120 items at 50 a page take
3 requests and 100 take 2, but exactly 50 take 2: only an empty second page tells a
one-page list from a server that counts pages. Without a usable total, a list takes one
request more than its pages: the empty page that proves its last page was the last.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Sequence
from typing import TypeVar

from ._errors import PaginationError

__all__ = [
    "Verdict",
    "fetch_limit",
    "is_repeat",
    "items_through",
    "judge_page",
    "parse_total_count",
    "plausible_total",
]

T = TypeVar("T")


class Verdict(enum.Enum):
    """What a page means for the listing."""

    MORE = "more"  # keep it; later pages may hold more
    LAST = "last"  # keep it (when it has items); the list is complete
    RETRY = "retry"  # a short page before the total: ask for the same page once more
    CONFIRM = "confirm"  # a short page without a plausible total: the last only if the next page is empty


def parse_total_count(value: object) -> int | None:
    """A page's ``totalCount`` as a count, or ``None`` when it is unknown.

    Missing, null, empty or negative (``-1`` is the usual "unknown") give ``None``; so
    does a number that is not a whole one. Digits in a string are read as the number.
    Anything else is not a number at all: ``ValueError``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(value)
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(value)
    if value < 0 or (isinstance(value, float) and not value.is_integer()):
        return None
    return int(value)


def items_through(page_num: int, page_size: int, item_count: int) -> int:
    """How many items the list holds up to the end of this page (the earlier pages were full)."""
    return (page_num - 1) * page_size + item_count


def plausible_total(page_num: int, page_size: int, item_count: int, total: int | None) -> int | None:
    """``total`` if a page of ``item_count`` items can be believed to come with it, else ``None``."""
    if total is None or total < items_through(page_num, page_size, item_count):
        return None
    if page_num == 1 and item_count == page_size and total <= page_size:
        return None
    return total


def is_repeat(previous: Sequence[T] | None, current: Sequence[T], key: Callable[[T], object]) -> bool:
    """Whether a non-empty page holds the previous page's items, in any order, compared by ``key``.

    The keys are compared as multisets: a server that ignores ``pageNum`` may return the
    same rows in another order on every request. An item whose key is ``None`` is
    compared whole. On a healthy server the first item of a page is not on the previous
    page, which ends the comparison after one pass over the previous keys.
    """
    if previous is None or not current or len(previous) != len(current):
        return False
    old = list(map(key, previous))
    first = key(current[0])
    if first is not None and first not in old:
        return False
    if None in old or first is None:
        old = _identities(previous, key)
    new = _identities(current, key)
    try:
        return collections.Counter(old) == collections.Counter(new)
    except TypeError:  # an unhashable item without a key
        return _same_items(old, new)


def _identities(items: Sequence[T], key: Callable[[T], object]) -> list[object]:
    return [item if (identity := key(item)) is None else identity for item in items]


def _same_items(old: Sequence[object], new: Sequence[object]) -> bool:
    """Whether ``new`` is ``old`` reordered, by equality alone (for unhashable items)."""
    remaining = list(old)
    for item in new:
        index = next((i for i, candidate in enumerate(remaining) if candidate == item), None)
        if index is None:
            return False
        del remaining[index]
    return True


def judge_page(
    page_num: int,
    page_size: int,
    item_count: int,
    total: int | None,
    *,
    repeats: bool,
    retried: bool,
    after_short: int | None = None,
) -> Verdict:
    """Apply the stop rules to page ``page_num`` of ``item_count`` items.

    ``repeats`` says that it holds the previous page's items (see :func:`is_repeat`);
    ``retried`` that this answer is the second one to this page; ``after_short`` is the
    item count of the previous page when it was judged :attr:`Verdict.CONFIRM`, so
    this page decides whether that one was the last.

    Raises:
        PaginationError: the page repeats the previous one; it is short twice before a
            plausible total; or it has items after a short page without one.
    """
    if repeats:
        raise PaginationError(f"page {page_num} repeats page {page_num - 1}: the server ignores pageNum")
    if after_short is not None:
        if item_count == 0:
            return Verdict.LAST
        raise PaginationError(
            f"page {page_num - 1} came back short ({after_short} of {page_size} items) without a usable"
            f" totalCount, yet page {page_num} has {item_count} items: a page in the middle is short"
        )
    believed = plausible_total(page_num, page_size, item_count, total)
    through = items_through(page_num, page_size, item_count)
    if item_count == page_size:
        return Verdict.LAST if believed == through else Verdict.MORE
    if believed == through:
        return Verdict.LAST
    if item_count == 0 and not retried:
        return Verdict.LAST
    if retried:
        raise PaginationError(_short_twice(page_num, page_size, item_count, believed))
    return Verdict.CONFIRM if believed is None else Verdict.RETRY


def _short_twice(page_num: int, page_size: int, item_count: int, believed: int | None) -> str:
    through = items_through(page_num, page_size, item_count)
    if believed is None:
        return (
            f"page {page_num} came back short twice: {item_count} of {page_size} items,"
            " the second time without a usable totalCount"
        )
    return (
        f"page {page_num} came back short twice: {item_count} of {page_size} items,"
        f" with totalCount {believed} (items {through + 1}-{min(believed, page_num * page_size)} are missing)"
    )


def fetch_limit(
    page_num: int,
    page_size: int,
    item_count: int,
    total: int | None,
    *,
    start_page: int,
    max_items: int | None,
) -> int | None:
    """The highest page worth requesting after page ``page_num`` (``None``: nothing bounds it).

    A total at least the items seen so far bounds it, one page further at the least (so a
    full first page whose total is one page asks for exactly one more); an unknown or
    smaller total bounds nothing. ``max_items`` counts from ``start_page``.
    """
    limit: int | None = None
    if total is not None and total >= items_through(page_num, page_size, item_count):
        limit = max(-(-total // page_size), page_num + 1)
    if max_items is not None:
        by_items = start_page - 1 + -(-max_items // page_size)
        limit = by_items if limit is None else min(limit, by_items)
    return limit
