"""callresultdetail and callresult: outbound call results, one or a campaign's worth.

The campaign query pages through the *request body* and has its own flow control
(at most 10 concurrent requests, more than 1 s between batches), which the client
enforces with a per-route limiter.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import AsyncGenerator
from operator import attrgetter
from typing import Any

import attrs

from .._errors import ValidationError
from .._models import CallResult, Page
from .._pager import DEFAULT_MAX_PAGES, Pager
from .._validation import check_path_param, check_text
from ._base import Resource, build_page, structure

__all__ = ["CallResultQuery", "CallResults"]

MAX_SPAN_DAYS = 30
MAX_PAGE_SIZE_DETAIL = 100
MAX_PAGE_SIZE = 500


@attrs.frozen
class CallResultQuery:
    """The filters of a campaign call-result query, validated on construction."""

    campaign_id: str
    show_detail: bool = False
    begin_time: _dt.date | None = None
    end_time: _dt.date | None = None
    session_id: str | None = None
    custom_field: str | None = None

    def __attrs_post_init__(self) -> None:
        check_text("campaign_id", self.campaign_id, required=True)
        if not isinstance(self.show_detail, bool):
            raise ValidationError("show_detail", f"must be a bool, got {type(self.show_detail).__name__}")
        for field in ("begin_time", "end_time"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, _dt.date):
                raise ValidationError(field, f"must be a datetime.date, got {type(value).__name__}")
        check_text("session_id", self.session_id)
        check_text("custom_field", self.custom_field)
        if (self.begin_time is None) != (self.end_time is None):
            raise ValidationError("begin_time", "begin_time and end_time must be given together")
        if self.begin_time is not None and self.end_time is not None:
            if self.begin_time >= self.end_time:
                raise ValidationError("begin_time", f"must be before end_time ({self.begin_time} >= {self.end_time})")
            if (self.end_time - self.begin_time).days > MAX_SPAN_DAYS:
                raise ValidationError("end_time", f"the span may be at most {MAX_SPAN_DAYS} days")

    @property
    def max_page_size(self) -> int:
        return MAX_PAGE_SIZE_DETAIL if self.show_detail else MAX_PAGE_SIZE

    def body(self, page_num: int, page_size: int) -> dict[str, Any]:
        """The request body of one page; filters that are ``None`` or ``""`` are left out."""
        body: dict[str, Any] = {"pageNum": page_num, "pageSize": page_size, "showDetail": int(self.show_detail)}
        if self.begin_time is not None and self.end_time is not None:
            body["beginTime"] = self.begin_time.strftime("%Y-%m-%d")
            body["endTime"] = self.end_time.strftime("%Y-%m-%d")
        if self.session_id:
            body["sessionId"] = self.session_id
        if self.custom_field:
            body["customField"] = self.custom_field
        return body


class CallResults(Resource):
    """``client.call_results``: ``get(call_id)`` and the campaign query ``page``/``pages``/``iter``."""

    async def get(self, call_id: str) -> CallResult:
        """The result of one call by its ``call_id`` (callresultdetail)."""
        check_path_param("call_id", check_text("call_id", call_id, required=True) or "")
        data = await self._call("callresultdetail", path_params={"callId": call_id})
        return structure(data.get("data"), CallResult, "callresultdetail")

    async def page(
        self,
        campaign_id: str,
        *,
        page_num: int = 1,
        page_size: int = MAX_PAGE_SIZE_DETAIL,
        show_detail: bool = False,
        begin_time: _dt.date | None = None,
        end_time: _dt.date | None = None,
        session_id: str | None = None,
        custom_field: str | None = None,
    ) -> Page[CallResult]:
        """One page of a campaign's call results (callresult)."""
        query = CallResultQuery(campaign_id, show_detail, begin_time, end_time, session_id, custom_field)
        return await self._pager(query).page(page_num, page_size)

    def _pager(self, query: CallResultQuery) -> Pager[CallResult]:
        return Pager(functools.partial(self._fetch, query), attrgetter("call_id"), query.max_page_size)

    async def _fetch(self, query: CallResultQuery, page_num: int, page_size: int) -> Page[CallResult]:
        data = await self._call(
            "callresult", path_params={"campaignId": query.campaign_id}, body=query.body(page_num, page_size)
        )
        return build_page(data, "data", CallResult, "callresult", page_num, page_size)

    def pages(
        self,
        campaign_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE_DETAIL,
        prefetch: int = 1,
        max_items: int | None = None,
        start_page: int = 1,
        max_pages: int = DEFAULT_MAX_PAGES,
        show_detail: bool = False,
        begin_time: _dt.date | None = None,
        end_time: _dt.date | None = None,
        session_id: str | None = None,
        custom_field: str | None = None,
    ) -> AsyncGenerator[Page[CallResult], None]:
        """Iterate a campaign's result pages in order, by the stop rules every listing
        follows (:mod:`isales_async._paging`); the route's flow limit applies to prefetch too."""
        query = CallResultQuery(campaign_id, show_detail, begin_time, end_time, session_id, custom_field)
        return self._pager(query).pages(
            page_size=page_size, prefetch=prefetch, max_items=max_items, start_page=start_page, max_pages=max_pages
        )

    def iter(
        self,
        campaign_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE_DETAIL,
        prefetch: int = 1,
        max_items: int | None = None,
        start_page: int = 1,
        max_pages: int = DEFAULT_MAX_PAGES,
        show_detail: bool = False,
        begin_time: _dt.date | None = None,
        end_time: _dt.date | None = None,
        session_id: str | None = None,
        custom_field: str | None = None,
    ) -> AsyncGenerator[CallResult, None]:
        """Iterate every call result of a campaign, in order (see :meth:`pages`)."""
        query = CallResultQuery(campaign_id, show_detail, begin_time, end_time, session_id, custom_field)
        return self._pager(query).iter(
            page_size=page_size, prefetch=prefetch, max_items=max_items, start_page=start_page, max_pages=max_pages
        )
