"""queryBusinessResults and callBusiResult: business result definitions and writeback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from os import PathLike
from typing import Any, Literal

from .._clock import Clock
from .._endpoints import ENDPOINTS
from .._errors import DefinitionsUnavailableError, ISalesError
from .._hooks import RetryScheduled
from .._models import BusinessResult
from .._validation import check_data_id
from ..batch import _engine
from ..batch._definitions import Definitions
from ..batch._engine import BatchControl
from ..batch._journal import Journal
from ..batch._report import BatchReport, Progress, WritebackPlan
from ..batch._writeback import MAX_CODE_LEN, Writeback, writeback_body
from ._base import PagedResource, Requester

__all__ = ["DEFINITIONS_TTL", "MAX_CODE_LEN", "BusinessResults", "SharedDefinitions", "writeback_body"]

_WRITE_BACK = ENDPOINTS["callBusiResult"]

#: Seconds fetched definitions are used before a check fetches them again (the client's clock).
DEFINITIONS_TTL = 300.0


class SharedDefinitions:
    """The definitions cache of one client, shared by every view ``with_options`` makes of it.

    A view only changes how requests are sent, not the tenant they reach, so the client
    and its views keep one cache and one fetch in flight.
    """

    __slots__ = ("cached", "fetching")

    def __init__(self) -> None:
        self.cached: tuple[Definitions, float] | None = None  # and when their fetch began
        self.fetching: asyncio.Future[Definitions] | None = None


class BusinessResults(PagedResource[BusinessResult]):
    """``client.business_results``: the definitions (paged) and writing results back."""

    _endpoint = "queryBusinessResults"
    _list_field = "data"
    _model = BusinessResult
    _key = "code"

    def __init__(self, requester: Requester, shared: SharedDefinitions) -> None:
        super().__init__(requester)
        self._shared = shared

    async def definitions(self, *, refresh: bool = False) -> Definitions:
        """The tenant's business-result definitions, every page, as checks use them.

        Fetched through the pager (so its stop rules hold) and kept for
        :data:`DEFINITIONS_TTL` (5 minutes) on the client, shared with every view
        ``client.with_options`` makes of it; ``refresh=True`` fetches them again now.
        Concurrent callers share one fetch. A failed fetch is not kept: the next call
        tries again.

        Raises:
            DefinitionsUnavailableError: the fetch failed (``cause`` is why), or the tenant
                lists no business result at all: a check against nothing would refuse
                every record, so none is checked or sent.
        """
        shared = self._shared
        cached = shared.cached
        if not refresh and cached is not None and self._clock.monotonic() - cached[1] < DEFINITIONS_TTL:
            return cached[0]
        if shared.fetching is None:
            shared.fetching = asyncio.ensure_future(self._fetch_definitions())
            shared.fetching.add_done_callback(_retrieve)
        # Shielded: one caller cancelled does not cancel the fetch the others wait on.
        return await asyncio.shield(shared.fetching)

    async def _fetch_definitions(self) -> Definitions:
        started = self._clock.monotonic()
        try:
            results = [result async for result in self.iter(prefetch=2)]
        except ISalesError as exc:
            raise DefinitionsUnavailableError(
                "the tenant's business-result definitions could not be fetched, so no record was checked "
                f"or sent: queryBusinessResults failed with {type(exc).__name__}: {exc}",
                cause=exc,
            ) from exc
        finally:
            self._shared.fetching = None
        definitions = Definitions(results)
        if not definitions.codes:
            raise DefinitionsUnavailableError(
                f"queryBusinessResults lists no business result for this tenant ({len(results)} items, "
                "none a level-1 code), so no record was checked or sent: a check against no definitions "
                "would refuse every record",
                cause=None,
            )
        self._shared.cached = (definitions, started)
        return definitions

    @property
    def _clock(self) -> Clock:
        return self._requester.clock

    async def write_back(
        self,
        data_id: int | str,
        busi_result: str,
        *,
        sub_status: str | None = None,
        busi_result_desc: str | None = None,
        work_no: str | None = None,
        check_definitions: bool = False,
    ) -> None:
        """Write a business result back for one outbound call record (callBusiResult).

        With ``check_definitions``, a ``busi_result``/``sub_status`` the tenant does not
        define (:meth:`definitions`) raises :class:`~isales_async.UndefinedResultError`
        instead of being sent; :class:`~isales_async.DefinitionsUnavailableError` when
        the definitions cannot be fetched (nothing is sent).

        Raises :class:`~isales_async.OutcomeUnknownError` when the request was sent but
        its fate is unknown: it is then deliberately not resent, since a second writeback
        can trigger the campaign's retry policy.
        """
        body = writeback_body(busi_result, sub_status, busi_result_desc, work_no)
        key = check_data_id(data_id)
        if check_definitions:
            (await self.definitions()).check(body["busiResult"], body.get("subStatus"))
        await self._send_write_back(key, body)

    async def write_back_many(
        self,
        records: Iterable[Writeback] | AsyncIterable[Writeback],
        *,
        concurrency: int | Literal["auto"] = 10,
        max_concurrency: int | None = None,
        journal: Journal | str | PathLike[str] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        fail_fast: bool = False,
        retry_failed: bool = False,
        resend_unknown: bool = False,
        retry_unknown: bool | None = None,
        control: BatchControl | None = None,
        check_definitions: bool = False,
    ) -> BatchReport:
        return await _engine.write_back_many(
            records,
            send=self._send_write_back,
            clock=self._clock,
            fetch_definitions=self.definitions,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            journal=journal,
            on_progress=on_progress,
            fail_fast=fail_fast,
            retry_failed=retry_failed,
            resend_unknown=resend_unknown,
            retry_unknown=retry_unknown,
            control=control,
            check_definitions=check_definitions,
        )

    write_back_many.__doc__ = _engine.write_back_many.__doc__

    async def plan_write_back(
        self,
        records: Iterable[Writeback] | AsyncIterable[Writeback],
        *,
        concurrency: int | Literal["auto"] = 10,
        max_concurrency: int | None = None,
        journal: Journal | str | PathLike[str] | None = None,
        fail_fast: bool = False,
        retry_failed: bool = False,
        resend_unknown: bool = False,
        check_definitions: bool = False,
    ) -> WritebackPlan:
        return await _engine.plan_write_back(
            records,
            send=self._send_write_back,
            clock=self._clock,
            fetch_definitions=self.definitions,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            journal=journal,
            fail_fast=fail_fast,
            retry_failed=retry_failed,
            resend_unknown=resend_unknown,
            check_definitions=check_definitions,
        )

    plan_write_back.__doc__ = _engine.plan_write_back.__doc__

    @staticmethod
    def validate_write_back(record: Writeback) -> dict[str, Any]:
        """The request body of ``record``, or the :class:`ValidationError` naming its bad field."""
        return writeback_body(record.busi_result, record.sub_status, record.busi_result_desc, record.work_no)

    def _send_write_back(
        self,
        data_id: str,
        body: dict[str, Any],
        on_send: Callable[[], None] | None = None,
        on_retry: Callable[[RetryScheduled], None] | None = None,
    ) -> Coroutine[Any, Any, Any]:
        # The request's coroutine itself, not one awaiting it: a coroutine less a record.
        return self._requester.request(
            _WRITE_BACK, path_params={"dataId": data_id}, body=body, on_send=on_send, on_retry=on_retry
        )


def _retrieve(fetch: asyncio.Future[Definitions]) -> None:
    """Mark a fetch's failure as seen, so a fetch whose every caller was cancelled logs no warning."""
    if not fetch.cancelled():
        fetch.exception()
