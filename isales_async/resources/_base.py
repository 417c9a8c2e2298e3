"""What every resource shares: the call into the session, structuring, and paging."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._endpoints import ENDPOINTS
from .._errors import ResponseFormatError
from .._models import Page, converter, explain
from .._pager import DEFAULT_MAX_PAGES, iterate_items, iterate_pages
from .._validation import check_int_range

if TYPE_CHECKING:
    from .._client import ISalesClient

__all__ = ["PagedResource", "Resource"]

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

    The hook is looked up once, not per item, and items are built optimistically (the hot
    path of listings); only after a failure is the list walked again to name what failed.
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
    hook = converter.get_structure_hook(cls)
    try:
        return [hook(item, cls) for item in value]
    except Exception as exc:
        index = next((i for i, item in enumerate(value) if not _readable(hook, item, cls)), 0)
        raise _shape_error(value[index], cls, endpoint, f"{where}[{index}]") from exc


def _readable(hook: Any, item: Any, cls: type[Any]) -> bool:
    try:
        hook(item, cls)
    except Exception:
        return False
    return True


def total_count(data: Mapping[str, Any], endpoint: str) -> int:
    try:
        return int(data.get("totalCount") or 0)
    except (TypeError, ValueError):
        raise ResponseFormatError(
            f"totalCount is not a number: {data.get('totalCount')!r}", endpoint=endpoint
        ) from None


class Resource:
    """A group of related endpoints bound to one client."""

    def __init__(self, client: ISalesClient) -> None:
        self._client = client

    async def _call(
        self,
        name: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self._client._request(ENDPOINTS[name], path_params=path_params, query=query, body=body)


class PagedResource(Resource, Generic[T]):
    """A resource over a ``pageNum``/``pageSize`` query-string endpoint (page size 1-50).

    Subclasses name the endpoint, the list field and the item model.
    """

    _endpoint: str
    _list_field: str
    _model: type[T]

    async def page(self, *, page_num: int = 1, page_size: int = MAX_PAGE_SIZE) -> Page[T]:
        """Fetch one page."""
        check_int_range("page_num", page_num, 1)
        check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
        return await self._fetch(page_num, page_size)

    async def _fetch(self, page_num: int, page_size: int) -> Page[T]:
        data = await self._call(self._endpoint, query=(("pageSize", str(page_size)), ("pageNum", str(page_num))))
        items = structure_list(data.get(self._list_field), self._model, self._endpoint, self._list_field)
        return Page(items, total_count(data, self._endpoint), page_num, page_size)

    def pages(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        prefetch: int = 1,
        max_items: int | None = None,
        start_page: int = 1,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> AsyncGenerator[Page[T], None]:
        """Iterate pages in order; ``prefetch`` pages may be held or in flight at once.

        Close it early with ``contextlib.aclosing`` (or ``break``) and outstanding
        fetches are cancelled.
        """
        check_int_range("page_size", page_size, 1, MAX_PAGE_SIZE)
        return iterate_pages(
            self._fetch,
            page_size=page_size,
            prefetch=prefetch,
            start_page=start_page,
            max_items=max_items,
            max_pages=max_pages,
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
        pages = self.pages(
            page_size=page_size, prefetch=prefetch, max_items=max_items, start_page=start_page, max_pages=max_pages
        )
        return iterate_items(pages, max_items)
