"""Page planning for pageNum/pageSize endpoints, as pure functions.

The rules: a page that is empty, or whose number times the page size reaches the
``totalCount`` the server sent *with that page*, is the last one; totals are re-read on
every page because they drift while we page; a page identical to the one before it
means the server ignores pageNum, and we stop with an error rather than loop.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["is_last_page", "is_repeat", "last_useful_page"]


def is_last_page(page_num: int, page_size: int, total_count: int, item_count: int) -> bool:
    """Whether no page after ``page_num`` can hold anything."""
    return item_count == 0 or page_num * page_size >= total_count


def last_useful_page(start_page: int, page_size: int, total_count: int, max_items: int | None = None) -> int:
    """The highest page number worth requesting, given the latest total and an item cap.

    ``max_items`` counts from ``start_page``. The result may be below ``start_page`` when
    nothing is left to fetch.
    """
    by_total = -(-total_count // page_size)
    if max_items is None:
        return by_total
    return min(by_total, start_page - 1 + -(-max_items // page_size))


def is_repeat(previous: Sequence[object] | None, current: Sequence[object]) -> bool:
    """Whether a non-empty page repeats the page before it item for item."""
    return previous is not None and len(current) > 0 and list(previous) == list(current)
