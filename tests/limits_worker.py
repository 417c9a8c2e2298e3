"""A worker process of the shared-limits tests: one client hammering callresult.

Run with ``multiprocessing``'s spawn context (a fresh interpreter, as a gunicorn worker
or a pod is): the function below is its whole life.
"""

from __future__ import annotations

import asyncio
from typing import Any

from isales_async import ISalesClient, RedisLimits, RetryPolicy, RouteLimit
from isales_async.testing import DEFAULT_AK, DEFAULT_SK

#: The route limit of the tests: 10 in flight, and an interval short enough that the
#: concurrency, not the spacing, is what binds.
LIMIT = RouteLimit(concurrency=10, interval=0.05)


def hammer(
    base_url: str,
    redis_url: str | None,
    tenant: str,
    calls: int,
    go: Any,
    results: Any,
    lease_seconds: float = 30.0,
) -> None:
    """Wait for ``go``, make ``calls`` callresult queries at once, put how many succeeded
    on ``results``. Without ``redis_url`` the limits are this process's own."""

    async def main() -> int:
        limits = RedisLimits(redis_url, tenant=tenant, lease_seconds=lease_seconds) if redis_url else None
        async with ISalesClient(
            base_url,
            ak=DEFAULT_AK,
            sk=DEFAULT_SK,
            vdn_id=1,
            limits=limits,
            max_concurrency=64,
            route_limits={"callresult": LIMIT},
            retry=RetryPolicy(deadline=120.0),
        ) as client:
            await client.call_results.page("1001", page_size=1)  # connected and warm before the start
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            pages = await asyncio.gather(*(client.call_results.page("1001", page_size=5) for _ in range(calls)))
            return len(pages)

    results.put(asyncio.run(main()))
