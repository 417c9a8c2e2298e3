"""queryBusinessResults and callBusiResult: business result definitions and writeback."""

from __future__ import annotations

from typing import Any

from .._errors import ValidationError
from .._models import BusinessResult
from .._validation import check_text
from ._base import PagedResource

__all__ = ["BusinessResults", "writeback_body"]

MAX_CODE_LEN = 50


def check_data_id(data_id: int | str) -> str:
    """``dataId`` is a positive integer (given as int or digits)."""
    text = str(data_id)
    if isinstance(data_id, bool) or not text.isdigit() or int(text) < 1:
        raise ValidationError("data_id", f"must be a positive integer, got {data_id!r}")
    return text


def writeback_body(
    busi_result: str, sub_status: str | None, busi_result_desc: str | None, work_no: str | None
) -> dict[str, Any]:
    """Validate a writeback and build its JSON body (absent optional fields are left out)."""
    body: dict[str, Any] = {"busiResult": check_text("busi_result", busi_result, max_len=MAX_CODE_LEN, required=True)}
    optional = {
        "subStatus": check_text("sub_status", sub_status, max_len=MAX_CODE_LEN),
        "busiResultDesc": check_text("busi_result_desc", busi_result_desc),
        "workNo": check_text("work_no", work_no),
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    return body


class BusinessResults(PagedResource[BusinessResult]):
    """``client.business_results``: the definitions (paged) and writing results back."""

    _endpoint = "queryBusinessResults"
    _list_field = "data"
    _model = BusinessResult

    async def write_back(
        self,
        data_id: int | str,
        busi_result: str,
        *,
        sub_status: str | None = None,
        busi_result_desc: str | None = None,
        work_no: str | None = None,
    ) -> None:
        """Write a business result back for one outbound call record (callBusiResult).

        Raises :class:`~isales_async.OutcomeUnknownError` when the request was sent but
        its fate is unknown: it is then deliberately not resent, since a second writeback
        can trigger the campaign's retry policy.
        """
        path_params = {"dataId": check_data_id(data_id)}
        body = writeback_body(busi_result, sub_status, busi_result_desc, work_no)
        await self._call("callBusiResult", path_params=path_params, body=body)
