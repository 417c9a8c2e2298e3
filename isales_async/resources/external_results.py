"""createObResult, queryOBSResults, queryObsResultDetail, updateObResult: external results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import ResponseFormatError, ValidationError
from .._models import ExternalResult
from .._validation import check_id, check_path_param, check_text
from ._base import PagedResource, structure

__all__ = ["ExternalResults"]


def _body(display_result: str, obs_codes: Sequence[str]) -> dict[str, Any]:
    check_text("display_result", display_result, required=True)
    if isinstance(obs_codes, str) or not obs_codes:
        raise ValidationError("obs_codes", "must be a non-empty list of result codes")
    for code in obs_codes:
        check_text("obs_codes", code, required=True)
    return {"displayResult": display_result, "obsCodes": list(obs_codes)}


class ExternalResults(PagedResource[ExternalResult]):
    """``client.external_results``: create, list (paged), get and update external results."""

    _endpoint = "queryOBSResults"
    _list_field = "data"
    _model = ExternalResult

    async def create(
        self, display_result: str, obs_codes: Sequence[str], result_code: str | None = None
    ) -> ExternalResult:
        """Create an external result mapping ``obs_codes`` to ``display_result``; returns it with its ``def_id``."""
        check_text("result_code", result_code, below=8)
        body = _body(display_result, obs_codes)
        if result_code is not None:
            body = {"resultCode": result_code, **body}
        data = await self._call("createObResult", body=body)
        if not data.get("defId"):
            raise ResponseFormatError("createObResult answered without a defId", endpoint="createObResult")
        return ExternalResult(str(data["defId"]), display_result, result_code, tuple(obs_codes))

    async def get(self, def_id: str | int) -> ExternalResult:
        """One external result by its ``def_id`` (queryObsResultDetail)."""
        data = await self._call("queryObsResultDetail", path_params={"defId": check_path_param("def_id", def_id)})
        return structure(data.get("obResult"), ExternalResult, "queryObsResultDetail")

    async def update(self, def_id: str | int, display_result: str, obs_codes: Sequence[str]) -> None:
        """Replace the display result and result codes of an external result (updateObResult)."""
        body = {"defId": check_id("def_id", def_id), **_body(display_result, obs_codes)}
        await self._call("updateObResult", body=body)
