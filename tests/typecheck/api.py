"""Type-checked by ``nox -s mypy``, never run: the public API as users write it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from isales_async import (
    BatchReport,
    BusinessResult,
    CallResult,
    CallStatus,
    ClientOptions,
    DefLevel,
    ExternalResult,
    ISalesClient,
    ISalesError,
    Journal,
    LimitChange,
    ObsResultCode,
    Page,
    RedisLimits,
    RetryPolicy,
    Status,
    Timeouts,
    Writeback,
)


async def usage() -> None:
    async with ISalesClient(
        "https://h:1", ak="a", sk="s", vdn_id=1, max_concurrency=5, timeouts=Timeouts(read=5), trust_env=True
    ) as client:
        page: Page[ObsResultCode] = await client.obs_result_codes.page(page_num=1, page_size=50)
        code: str = page.items[0].obs_code
        total: int | None = page.total_count  # None: the server sent no usable totalCount
        async for result in client.business_results.iter(page_size=50, prefetch=2):
            parent: BusinessResult = result
            children: list[str] = [c.code for c in parent.children]
        await client.business_results.write_back(1, "B01", sub_status="B01-1", busi_result_desc=None, work_no="2033")
        call: CallResult = await client.call_results.get("1-1")
        begin, end = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
        calls: list[CallResult] = [c async for c in client.call_results.iter("1001", begin_time=begin, end_time=end)]
        created: ExternalResult = await client.external_results.create("shown", ["00602"], result_code="007")
        def_id: str | None = created.def_id  # None when the server confirmed without a defId
        report: BatchReport = await client.business_results.write_back_many([Writeback(1, "B01")], concurrency=4)
        ids: list[str] = [o.key for o in report.succeeded]
        errors: list[ISalesError | None] = [o.error for o in report.failed]
        adaptive = await client.business_results.write_back_many(
            [Writeback(2, "B01")], concurrency="auto", max_concurrency=8
        )
        settled: float | None = adaptive.concurrency.settled if adaptive.concurrency is not None else None
        changes: list[LimitChange] = list(adaptive.concurrency.history) if adaptive.concurrency is not None else []
        status: CallStatus | None = call.call_status  # an undocumented number is CallStatus.UNKNOWN-named, never an int
        known: bool = status.known if status is not None else False
        level: DefLevel | str | float | bool | list[Any] | dict[str, Any] | None = parent.def_level
        with Journal("results.journal.sqlite", readonly=True) as journal:
            states: list[Status] = [entry.status for entry in journal.entries(Status.FAILED, Status.UNKNOWN)]
        await client.with_options(retry=RetryPolicy(attempts=1)).call_results.get(def_id or "1-1")
        tuned: ClientOptions = client.with_options(timeouts=Timeouts(read=1)).options
        same = ISalesClient("https://h:1", ak="a", sk="s", vdn_id=1, options=ClientOptions(max_concurrency=5))
        shared = ClientOptions(limits=RedisLimits("redis://cache:6379/0", tenant="vdn-1", lease_seconds=10))
        available: bool = shared.limits is not None
        concurrency: int = tuned.max_concurrency + same.options.max_concurrency
        del (
            code,
            total,
            children,
            call,
            calls,
            ids,
            errors,
            known,
            level,
            states,
            concurrency,
            settled,
            changes,
            available,
        )


async def traced_usage() -> None:
    from isales_async import CallFinished, Event, Progress, log_event
    from isales_async.otel import Telemetry

    telemetry = Telemetry()

    def my_hook(event: Event) -> None:
        if isinstance(event, CallFinished):
            failed: str | None = event.error
            del failed

    def shown(progress: Progress) -> None:
        print(progress.done)

    async with ISalesClient("https://h:1", ak="a", sk="s", vdn_id=1, hooks=[log_event, telemetry, my_hook]) as client:
        await client.business_results.write_back_many(
            [Writeback(1, "B01")], on_progress=telemetry.batch_progress(then=shown)
        )
