"""createObResult, queryOBSResults, queryObsResultDetail, updateObResult: external results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ValidationError
from .._models import ExternalResult, ObsResultCode
from .._validation import check_id, check_path_param, check_text
from ._base import PagedResource, structure

__all__ = ["ExternalResults"]


ObsCodes = list[str] | tuple[str, ...]


def _body(display_result: str, obs_codes: ObsCodes) -> dict[str, Any]:
    check_text("display_result", display_result, required=True)
    return {"displayResult": display_result, "obsCodes": _checked_codes(obs_codes)}


def _checked_codes(obs_codes: ObsCodes) -> list[str]:
    """The codes as the list that is sent: a list or tuple only, since anything else
    iterable (an iterator, spent by the check; a dict, whose keys would go out) is not
    what it seems."""
    if not isinstance(obs_codes, (list, tuple)):
        raise ValidationError("obs_codes", f"must be a list or tuple of result codes, got {type(obs_codes).__name__}")
    if not obs_codes:
        raise ValidationError("obs_codes", "must be a non-empty list of result codes")
    codes = list(obs_codes)
    for code in codes:
        check_text("obs_codes", code, required=True)
    return codes


def _created_def_id(raw: Any) -> tuple[str | None, Mapping[str, Any]]:
    """The ``defId`` createObResult answered, or ``None`` (and the raw value, if any) when unusable."""
    if type(raw) is int:
        return str(raw), {}
    if type(raw) is str and raw.strip():
        return raw, {}
    if raw is None or raw == "":
        return None, {}
    return None, {"defId": raw}


class ExternalResults(PagedResource[ExternalResult]):
    """``client.external_results``: create, list (paged), get and update external results."""

    _endpoint = "queryOBSResults"
    _list_field = "data"
    _model = ExternalResult
    _key = "def_id"

    async def create(self, display_result: str, obs_codes: ObsCodes, result_code: str | None = None) -> ExternalResult:
        """Create an external result mapping ``obs_codes`` (a list or tuple) to ``display_result``;
        returns it with its ``def_id``.

        A ``result_code`` of ``None`` or ``""`` is left out of the request. Should the
        server confirm the creation without a usable ``defId``, the result is still
        returned, with ``def_id=None`` (and an unreadable ``defId`` kept in ``extra``):
        the external result exists, so creating it again would make a duplicate.
        """
        check_text("result_code", result_code, below=8)
        body = _body(display_result, obs_codes)
        if result_code:
            body = {"resultCode": result_code, **body}
        data = await self._call("createObResult", body=body)
        def_id, extra = _created_def_id(data.get("defId"))
        codes = tuple(body["obsCodes"])
        details = tuple(ObsResultCode(code) for code in codes)
        return ExternalResult(def_id, display_result, result_code or None, codes, details, extra)

    async def get(self, def_id: str | int) -> ExternalResult:
        """One external result by its ``def_id`` (queryObsResultDetail)."""
        data = await self._call("queryObsResultDetail", path_params={"defId": check_path_param("def_id", def_id)})
        return structure(data.get("obResult"), ExternalResult, "queryObsResultDetail", "obResult")

    async def update(self, def_id: str | int, display_result: str, obs_codes: ObsCodes) -> None:
        """Replace the display result and result codes of an external result (updateObResult)."""
        body = {"defId": check_id("def_id", def_id), **_body(display_result, obs_codes)}
        await self._call("updateObResult", body=body)
