"""queryBusinessResults and callBusiResult: business result definitions and writeback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._batch import write_back_many
from .._endpoints import ENDPOINTS
from .._models import BusinessResult
from .._validation import check_data_id
from .._writeback import MAX_CODE_LEN, Writeback, writeback_body
from ._base import PagedResource

__all__ = ["MAX_CODE_LEN", "BusinessResults", "writeback_body"]


class BusinessResults(PagedResource[BusinessResult]):
    """``client.business_results``: the definitions (paged) and writing results back."""

    _endpoint = "queryBusinessResults"
    _list_field = "data"
    _model = BusinessResult
    _key = "code"

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
        body = writeback_body(busi_result, sub_status, busi_result_desc, work_no)
        await self._send_write_back(check_data_id(data_id), body)

    # The batch lives in _batch; bound here as a method, it is client.business_results.write_back_many.
    write_back_many = write_back_many

    @staticmethod
    def validate_write_back(record: Writeback) -> dict[str, Any]:
        """The request body of ``record``, or the :class:`ValidationError` naming its bad field."""
        return writeback_body(record.busi_result, record.sub_status, record.busi_result_desc, record.work_no)

    async def _send_write_back(
        self, data_id: str, body: dict[str, Any], on_send: Callable[[], None] | None = None
    ) -> None:
        await self._client._request(
            ENDPOINTS["callBusiResult"], path_params={"dataId": data_id}, body=body, on_send=on_send
        )
