"""The fake tenant: its data, its business-result definitions and the endpoints on them.

:class:`Tenant` holds what a CC-iSales tenant has (OBS codes, business results, data IDs,
campaigns and their calls, external results) and answers each endpoint on it, validating
as the API reference documents and raising :class:`~._routes.Reject` with the
per-endpoint code. It sees no HTTP: the application (:mod:`._server`) verifies, routes,
applies faults and records before and after it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from .._envelope import SUCCESS
from . import _data
from ._faults import SHORT_PAGE_NUM, PagingQuirk
from ._routes import Reject, envelope_of, is_sub_result, page_args, parse_integer, text_field

__all__ = ["VDN_ID", "AppliedWrite", "Tenant"]

#: The VDN the seed campaigns and their calls belong to.
VDN_ID = 1


@attrs.frozen
class AppliedWrite:
    """A write the server applied: the endpoint, its key and the body it applied."""

    endpoint: str
    key: str
    body: dict[str, Any]


class Tenant:
    """A tenant's state and the endpoint handlers that read and change it.

    Each ``_on_<endpoint>`` takes the request's path ``params``, ``query``, parsed
    ``body`` and ``vdn`` and returns the answer's JSON data, or raises ``Reject``. Every
    write it applies is appended to ``applied``, in order. The attributes are public so
    that a test can read and change the data (``business_results``, ``paging``, ...)
    between requests.
    """

    def __init__(
        self,
        *,
        obs_code_count: int,
        business_result_count: int,
        children_per_result: int,
        data_id_count: int,
        calls_per_campaign: int,
        campaigns: Sequence[str],
        paging: PagingQuirk | None,
        business_results: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        self.obs_codes: list[dict[str, Any]] = _data.obs_codes(obs_code_count)
        self.business_results: list[dict[str, Any]] = (
            [dict(result) for result in business_results]
            if business_results is not None
            else _data.business_results(business_result_count, children_per_result)
        )
        self.data_id_count = data_id_count
        start = _dt.datetime(2026, 11, 2, 9, 0, 0)
        self.campaign_calls: dict[str, list[dict[str, Any]]] = {
            c: _data.call_results(VDN_ID, c, calls_per_campaign, start) for c in campaigns
        }
        #: The VDN each campaign belongs to: callresult and callresultdetail answer "does
        #: not exist" for a campaign or call of another VDN.
        self.campaign_vdns: dict[str, int] = dict.fromkeys(campaigns, VDN_ID)
        self.external_results: dict[str, dict[str, Any]] = {}
        self.paging = paging
        self._shortened: set[str] = set()  # endpoints whose page 2 SHORT_PAGE_ONCE already shortened
        self.applied: list[AppliedWrite] = []
        self._next_def_id = 1645244637

    def calls(self) -> Iterator[dict[str, Any]]:
        """Every call of every campaign."""
        for calls in self.campaign_calls.values():
            yield from calls

    def respond(
        self, endpoint: str, *, params: dict[str, str], query: dict[str, str], body: dict[str, Any], vdn: int
    ) -> dict[str, Any]:
        """The answer of ``endpoint`` to a request that passed every check before it."""
        handler = getattr(self, f"_on_{endpoint}")
        return handler(params=params, query=query, body=body, vdn=vdn)  # type: ignore[no-any-return]

    def _paged(self, endpoint: str, query: dict[str, str], items: Sequence[Any], field: str) -> dict[str, Any]:
        num, size = page_args(endpoint, query)
        return envelope_of(f"query {endpoint} Success!", **self._page_fields(endpoint, items, num, size, field))

    def _page_fields(self, endpoint: str, items: Sequence[Any], num: int, size: int, field: str) -> dict[str, Any]:
        """The list field and ``totalCount`` of page ``num``, as the ``paging`` quirk distorts them."""
        quirk = self.paging
        if quirk is PagingQuirk.IGNORE_PAGE_NUM:
            num = 1
        chunk = list(items[(num - 1) * size : num * size])
        if num == SHORT_PAGE_NUM and len(chunk) == size > 1 and self._shortens(quirk, endpoint):
            chunk.pop()
        fields: dict[str, Any] = {field: chunk, "totalCount": len(items)}
        if quirk is PagingQuirk.PER_PAGE_TOTAL:
            fields["totalCount"] = len(chunk)
        elif quirk is PagingQuirk.TOTAL_NULL:
            fields["totalCount"] = None
        elif quirk is PagingQuirk.TOTAL_UNKNOWN:
            fields["totalCount"] = -1
        elif quirk is PagingQuirk.TOTAL_MISSING:
            del fields["totalCount"]
        return fields

    def _shortens(self, quirk: PagingQuirk | None, endpoint: str) -> bool:
        if quirk is PagingQuirk.SHORT_PAGE_ALWAYS:
            return True
        if quirk is PagingQuirk.SHORT_PAGE_ONCE and endpoint not in self._shortened:
            self._shortened.add(endpoint)
            return True
        return False

    def _on_queryOBSResultCode(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        return self._paged("queryOBSResultCode", query, self.obs_codes, "obsCodes")

    def _on_queryBusinessResults(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        return self._paged("queryBusinessResults", query, self.business_results, "data")

    def _on_queryOBSResults(self, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        listed = [{k: r[k] for k in ("displayResult", "resultCode", "defId")} for r in self.external_results.values()]
        return self._paged("queryOBSResults", query, listed, "data")

    def _on_callBusiResult(self, *, params: dict[str, str], body: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Apply a writeback, refusing what the tenant's definitions do not have.

        A ``busiResult`` that is not a level-1 code of ``business_results`` is ``0200001``
        (the page's error table offers nothing closer than "Parameter error"); a
        ``subStatus`` that is not one of that code's children, including any ``subStatus``
        on a code without children, is ``0200034``. The definitions read as
        :class:`~isales_async.Definitions` reads them (:meth:`_sub_statuses_of`).
        """
        data_id = params["dataId"]
        busi_result = text_field(body, "busiResult", required=True, max_len=50)
        sub_status = text_field(body, "subStatus", max_len=50)
        text_field(body, "busiResultDesc")
        text_field(body, "workNo")
        if not 1 <= parse_integer("dataId", data_id) <= self.data_id_count:
            raise Reject("0200033", f"The outbound call data {data_id} does not exist.")
        children = self._sub_statuses_of(busi_result) if busi_result is not None else None
        if children is None:
            raise Reject("0200001", f"busiResult {busi_result} is not a defined business result")
        if sub_status is not None and sub_status not in children:
            raise Reject("0200034", f"The substatus {sub_status} does not match the business result {busi_result}.")
        self.applied.append(AppliedWrite("callBusiResult", data_id, body))
        return {"resultCode": SUCCESS, "resultDesc": "The business result is written back successfully."}

    def _sub_statuses_of(self, busi_result: str) -> set[str] | None:
        """The sub-status codes of the level-1 code ``busi_result``; ``None`` when it is not one.

        The API reference (queryBusinessResults, Tables 4 and 5) marks each item with
        ``defLevel``: 1 a parent business result, 2 a sub-result. So an item marked 2 is
        no level-1 code even where it is listed at the top, and ``busiResult`` takes only
        level-1 codes. Nothing makes a code unique in the listing: a code listed twice is
        one business result whose sub-results are those of every listing.
        """
        listings = [r for r in self.business_results if r["code"] == busi_result and not is_sub_result(r)]
        if not listings:
            return None
        return {child["code"] for listing in listings for child in listing.get("children") or ()}

    def _on_callresultdetail(self, *, params: dict[str, str], vdn: int, **_: Any) -> dict[str, Any]:
        call = next((c for c in self.calls() if c["callId"] == params["callId"]), None)
        if call is None or call["vdnId"] != vdn:
            raise Reject("0200007", "The call record ID does not exist.")
        detail = {
            k: call[k]
            for k in (
                "callId",
                "called",
                "callEndTime",
                "vdnId",
                "callStatus",
                "failCode",
                "resultCode",
                "callBeginTime",
                "recordPath",
                "ackBeginTime",
            )
        }
        return envelope_of("Query Success!", data=detail)

    def _on_callresult(self, *, params: dict[str, str], body: dict[str, Any], vdn: int, **_: Any) -> dict[str, Any]:
        calls = self.campaign_calls.get(params["campaignId"])
        if calls is None or self.campaign_vdns.get(params["campaignId"], VDN_ID) != vdn:
            raise Reject("0200007", "The campaign does not exist.")
        show_detail = body.get("showDetail") or 0
        if show_detail not in (0, 1):
            raise Reject("0200001", "showDetail must be 0 or 1")
        begin, end = body.get("beginTime"), body.get("endTime")
        if (begin is None) != (end is None):
            raise Reject("0200008", "beginTime and endTime must be specified together.")
        if begin is not None and end is not None:
            try:
                begin_day = _dt.datetime.strptime(begin, "%Y-%m-%d")
                end_day = _dt.datetime.strptime(end, "%Y-%m-%d")
            except ValueError:
                raise Reject("0200009", "The time format is incorrect.") from None
            if begin_day >= end_day:
                raise Reject("0200010", "The start time must be earlier than the end time.")
            if (end_day - begin_day).days > 30:
                raise Reject("0200011", "The time span cannot exceed 30 days.")
            calls = [
                c
                for c in calls
                if begin_day
                <= _dt.datetime.strptime(c["callTimeStr"], "%Y-%m-%d %H:%M:%S")
                < end_day + _dt.timedelta(days=1)
            ]
        for key in ("sessionId", "customField"):
            if body.get(key) is not None:
                calls = [c for c in calls if c[key] == body[key]]
        max_size = 100 if show_detail else 500
        size, num = body.get("pageSize"), body.get("pageNum")
        if size is None and num is None:
            fields: dict[str, Any] = {"data": calls[:2000], "totalCount": len(calls)}
        else:
            if size is None or not 1 <= size <= max_size:
                raise Reject("0200001", f"pageSize must be 1-{max_size} with showDetail={show_detail}")
            if num is None or num < 1:
                raise Reject("0200001", "pageNum must be greater than 0")
            fields = self._page_fields("callresult", calls, num, size, "data")
        keys: tuple[str, ...] = (
            "campaignId",
            "sessionId",
            "called",
            "callTimeStr",
            "callStatus",
            "failCode",
            "resultCode",
            "vdnId",
            "callId",
            "recordPath",
        )
        if show_detail:
            keys += ("customField", "ackBeginTime", "callBeginTime", "callEndTime")
        fields["data"] = [{k: c[k] for k in keys} for c in fields["data"]]
        return envelope_of("Query Success!", **fields)

    def _validated_external(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        display = text_field(body, "displayResult", required=True)
        codes = body.get("obsCodes")
        if not codes:
            raise Reject("02000001", "obsCodes is empty")
        known = {c["obsCode"] for c in self.obs_codes}
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise Reject("0200001", f"unknown obsCodes: {unknown}")
        return display or "", codes

    def _on_createObResult(self, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        result_code = text_field(body, "resultCode", max_len=7)
        display, codes = self._validated_external(body)
        def_id = str(self._next_def_id)
        self._next_def_id += 1
        self.external_results[def_id] = {
            "defId": def_id,
            "displayResult": display,
            "resultCode": result_code or "",
            "obsCodes": codes,
        }
        self.applied.append(AppliedWrite("createObResult", def_id, body))
        return envelope_of("createObResult Success!", defId=def_id)

    def _on_queryObsResultDetail(self, *, params: dict[str, str], **_: Any) -> dict[str, Any]:
        found = self.external_results.get(params["defId"])
        if found is None:
            raise Reject("0200001", f"defId {params['defId']} does not exist")
        return envelope_of("queryObsResultDetail Success!", obResult=dict(found))

    def _on_updateObResult(self, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        def_id = text_field(body, "defId", required=True) or ""
        if def_id not in self.external_results:
            raise Reject("0200001", f"defId {def_id!r} does not exist")
        display, codes = self._validated_external(body)
        self.external_results[def_id].update(displayResult=display, obsCodes=codes)
        self.applied.append(AppliedWrite("updateObResult", def_id, body))
        return envelope_of("updateObResult Success!")
