"""Where ``concurrency="auto"`` settles against a server of capacity N, and what it costs.

``python -m benchmarks.adaptive`` runs, for each N, a batch of ``100 * N`` writebacks
against the fake with ``Capacity(N)`` (429 above N in flight, without and with a
``Retry-After`` of 1 s) and 50 ms latency, in virtual time (``FakeClock(virtual=True)``):
the figures are the algorithm's, not the machine's, and repeat from run to run but for
the retries' random jitter. Records/s are in the fake's seconds, beside a fixed
concurrency of N (the best a caller who knew N could do) and of 2N (one who guessed
too high: its 429s are retried, and a record whose every attempt is refused fails).
"""

from __future__ import annotations

import asyncio
import random

from isales_async import BatchReport, ISalesClient, Writeback
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, Capacity, FakeClock, FakeISales

CAPACITIES = (2, 4, 8, 12, 16, 24)
LATENCY = 0.05


async def batch(capacity: int, concurrency: int | str, retry_after: str | None) -> tuple[BatchReport, FakeISales]:
    clock = FakeClock(virtual=True)
    server = FakeISales(capacity=Capacity(capacity, retry_after=retry_after), latency=LATENCY, clock=clock)
    records = [Writeback(data_id=i, busi_result="B01") for i in range(1, 100 * capacity + 1)]
    async with ISalesClient(
        "https://isales.test",
        ak=DEFAULT_AK,
        sk=DEFAULT_SK,
        vdn_id=1,
        clock=clock,
        transport=server.transport(),
        max_concurrency=100,
    ) as client:
        if concurrency == "auto":
            report = await client.business_results.write_back_many(records, concurrency="auto", max_concurrency=40)
        else:
            report = await client.business_results.write_back_many(records, concurrency=int(concurrency))
    return report, server


async def main() -> None:
    random.seed(0)
    print(
        "| N | Retry-After | settled | final | peak | 429s | failed | applied twice | auto rec/s "
        "| fixed N rec/s | fixed 2N rec/s (failed) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for capacity in CAPACITIES:
        fixed, _ = await batch(capacity, capacity, None)
        for retry_after in (None, "1"):
            report, server = await batch(capacity, "auto", retry_after)
            over, _ = await batch(capacity, 2 * capacity, retry_after)
            c = report.concurrency
            assert c is not None and server.capacity is not None
            twice = sum(n > 1 for n in server.applied_counts().values())
            print(
                f"| {capacity} | {retry_after or '-'} | {c.settled:.1f} | {c.final} | {c.peak} | "
                f"{server.capacity.refused} | {len(report.failed)} | {twice} | {report.rate:.0f} | {fixed.rate:.0f} | "
                f"{over.rate:.0f} ({len(over.failed)}) |"
            )


if __name__ == "__main__":
    asyncio.run(main())
