"""What every resource shares: the call into the session, structuring, and paging."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

from .._clock import Clock
from .._endpoints import ENDPOINTS, Endpoint
from .._errors import ResponseFormatError
from .._hooks import RetryScheduled
from .._models import Page, converter, explain, structure_items
from .._pager import DEFAULT_MAX_PAGES, Pager
from .._paging import parse_total_count

__all__ = ["PagedResource", "Requester", "Resource"]

T = TypeVar("T")
MAX_PAGE_SIZE = 50


def _shape_error(value: Any, cls: type[Any], endpoint: str, where: str) -> ResponseFormatError:
    """The error for an item that cannot be read: it names the field, its raw value and why."""
    problem = explain(value, cls, where)
    return ResponseFormatError(
        f"cannot read {cls.__name__} {problem.field}: {problem.reason}; got {_excerpt(problem.value)}",
        endpoint=endpoint,
        field=problem.field,
        value=problem.value,
    )


def _excerpt(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def structure(value: Any, cls: type[T], endpoint: str, where: str = "data") -> T:
    """Build ``cls`` from the response's ``where`` field; what the model cannot take is a format error."""
    try:
        return converter.get_structure_hook(cls)(value, cls)  # type: ignore[no-any-return]
    except Exception as exc:
        raise _shape_error(value, cls, endpoint, where) from exc


def structure_list(value: Any, cls: type[T], endpoint: str, where: str = "data") -> list[T]:
    """Build a list of ``cls`` from the response's ``where`` field.

    One generated function builds the whole list (the hot path of listings); only after
    a failure is the list walked again, item by item, to name what failed.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ResponseFormatError(
            f"expected a list of {cls.__name__} in {where}; got {_excerpt(value)}",
            endpoint=endpoint,
            field=where,
            value=value,
        )
    try:
        return structure_items(value, cls)
    except Exception as exc:
        hook = converter.get_structure_hook(cls)
        index = next((i for i, item in enumerate(value) if not _readable(hook, item, cls)), 0)
        raise _shape_error(value[index], cls, endpoint, f"{where}[{index}]") from exc


def _readable(hook: Any, item: Any, cls: type[Any]) -> bool:
    try:
        hook(item, cls)
    except Exception:
        return False
    return True


def total_count(data: Mapping[str, Any], endpoint: str) -> int | None:
    """The page's ``totalCount``; ``None`` when the server sent none it could mean (missing, null, -1)."""
    try:
        return parse_total_count(data.get("totalCount"))
    except ValueError:
        raw = data.get("totalCount")
        raise ResponseFormatError(
            f"totalCount is not a number: {raw!r}", endpoint=endpoint, field="totalCount", value=raw
        ) from None


def build_page(
    data: Mapping[str, Any], list_field: str, model: type[T], endpoint: str, page_num: int, page_size: int
) -> Page[T]:
    """The :class:`Page` of a paged endpoint's answer: its items and its reported total."""
    items = structure_list(data.get(list_field), model, endpoint, list_field)
    return Page(items, total_count(data, endpoint), page_num, page_size)


class Requester(Protocol):
    """What a resource needs of its client: one API call (signed, limited, retried), and its clock."""

    @property
    def clock(self) -> Clock: ...

    async def request(
        self,
        endpoint: Endpoint,
        *,
        path_params: Mapping[str, str | int] | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        on_send: Callable[[], None] | None = None,
        on_retry: Callable[[RetryScheduled], None] | None = None,
    ) -> dict[str, Any]: ...


class Resource:
    """A group of related endpoints, calling the API through a :class:`Requester`."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def _call(
        self,
        name: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        # The requester's coroutine itself, not one awaiting it: a coroutine less per call.
        return self._requester.request(ENDPOINTS[name], path_params=path_params, query=query, body=body)


class PagedResource(Resource, Generic[T]):
    """A resource over a ``pageNum``/``pageSize`` query-string endpoint (page size 1-50).

    Subclasses name the endpoint, the list field, the item model and the item attribute
    that identifies an item (compared to detect a server that ignores ``pageNum``).
    """

    _endpoint: str
    _list_field: str
    _model: type[T]
    _key: str

    def __init__(self, requester: Requester) -> None:
        super().__init__(requester)
        self._pager = Pager(self._fetch, attrgetter(self._key), MAX_PAGE_SIZE)
        self._endpoint_spec = ENDPOINTS[self._endpoint]

    async def page(self, *, page_num: int = 1, page_size: int = MAX_PAGE_SIZE) -> Page[T]:
        """Fetch one page."""
        self._pager.check_page(page_num, page_size)
        return await self._fetch(page_num, page_size)

    async def _fetch(self, page_num: int, page_size: int) -> Page[T]:
        query = (("pageSize", str(page_size)), ("pageNum", str(page_num)))
        data = await self._requester.request(self._endpoint_spec, query=query)
        return build_page(data, self._list_field, self._model, self._endpoint, page_num, page_size)

    def pages(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        prefetch: int = 1,
        max_items: int | None = None,
        start_page: int = 1,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> AsyncGenerator[Page[T], None]:
        """Iterate pages in order until the list is provably complete; ``prefetch`` pages may
        be held or in flight at once.

        Raises :class:`~isales_async.PaginationError` when the server pages inconsistently
        (a repeated page, a page short twice before the total, more than ``max_pages``).
        Close it early with ``contextlib.aclosing`` (or ``break``) and outstanding
        fetches are cancelled.
        """
        return self._pager.pages(
            page_size=page_size, prefetch=prefetch, max_items=max_items, start_page=start_page, max_pages=max_pages
        )

    def iter(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        prefetch: int = 1,
        max_items: int | None = None,
        start_page: int = 1,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> AsyncGenerator[T, None]:
        """Iterate every item across pages, in order (see :meth:`pages`)."""
        return self._pager.iter(
            page_size=page_size, prefetch=prefetch, max_items=max_items, start_page=start_page, max_pages=max_pages
        )
