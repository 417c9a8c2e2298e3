"""``isales fake-server`` and ``isales demo``, on the embedded fake server.

:mod:`isales_async.testing` is imported only when one of them runs: the other commands do
not load the fake server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
from aiohttp import web

from .. import CallResult, ISalesClient, Journal, PushReceiver, Writeback
from ..push._adapters import aiohttp_app
from ._output import out, run_or_exit, titled_table
from ._writeback import print_summary, run_writeback

if TYPE_CHECKING:
    from ..testing import FakeISales


@click.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", default=28090, show_default=True, help="the port to listen on")
@click.option("--latency", default=0.0, show_default=True, help="seconds added to every answer")
def fake_server(host: str, port: int, latency: float) -> None:
    """Run the embedded fake CC-iSales server until interrupted."""
    from ..testing import DEFAULT_AK, FakeISales

    async def serve() -> None:
        server = FakeISales(latency=latency)
        url = await server.start(host, port)
        out.print(f"fake CC-iSales listening on {url} (VDN any of 1-9999)")
        out.print(f"export ISALES_BASE_URL={url} ISALES_AK={DEFAULT_AK} ISALES_VDN_ID=1")
        out.print("export ISALES_SK=$(python -c 'from isales_async.testing import DEFAULT_SK; print(DEFAULT_SK)')")
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def demo_records(count: int) -> Iterator[Writeback]:
    """Mostly good records, with the mistakes a real file has: a bad sub-status, a missing
    data ID, an empty result and a duplicate."""
    for i in range(1, count + 1):
        parent = f"B{i % 12 + 1:02d}"
        if i % 500 == 7:
            yield Writeback(i, parent, sub_status="B99-9")
        elif i % 1000 == 11:
            yield Writeback(50_000_000 + i, parent)
        elif i % 1500 == 13:
            yield Writeback(i, "")
        else:
            yield Writeback(i, parent, sub_status=f"{parent}-{i % 3 + 1}", work_no=f"{2000 + i % 50}")
    yield Writeback(1, "B02")


@click.command("demo")
@click.option("--records", default=3000, show_default=True, help="how many records the demo writes back")
@click.option("--concurrency", default=20, show_default=True, help="records in flight")
@click.option("--no-progress", is_flag=True, help="no progress bar on stderr")
def demo(records: int, concurrency: int, no_progress: bool) -> None:
    """Start the embedded fake server and run the main job against it, faults included."""
    from ..testing import DEFAULT_AK, DEFAULT_SK, Chaos, FakeISales, Fault

    async def run() -> None:
        async with FakeISales(latency=0.002) as server:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the loopback fake speaks plain http
                client = ISalesClient(
                    server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, max_concurrency=concurrency
                )
            out.print(f"[bold]isales demo[/bold]: embedded fake CC-iSales at {server.base_url}")
            async with client:
                codes = [c async for c in client.obs_result_codes.iter(prefetch=3)]
                out.print(
                    titled_table(
                        f"OBS result codes (first 8 of {len(codes)})",
                        ["code", "description"],
                        [[c.obs_code, c.obs_code_desc] for c in codes[:8]],
                    )
                )
                results = [r async for r in client.business_results.iter()]
                out.print(
                    titled_table(
                        f"Business results ({len(results)})",
                        ["code", "name", "sub-results"],
                        [[r.code, r.name, ", ".join(c.code for c in r.children)] for r in results[:6]],
                    )
                )
                server.chaos = Chaos(
                    0.03, [Fault.status_code(503), Fault.status_code(429, retry_after="0.05"), Fault.reset(after=True)]
                )
                with tempfile.TemporaryDirectory() as tmp:
                    journal = Journal(Path(tmp) / "demo.journal.sqlite")
                    report = await run_writeback(
                        client,
                        demo_records(records),
                        total=records + 1,
                        concurrency=concurrency,
                        journal=journal,
                        fail_fast=False,
                        show_progress=not no_progress,
                    )
                    journal.close()
            print_summary(report, 0, None, None, 0)
            for outcome in report.failed[:5]:
                out.print(
                    f"  failed {outcome.data_id}: {type(outcome.error).__name__}: {outcome.error}", highlight=False
                )
            applied = server.applied_counts()
            unknown_applied = sum(1 for o in report.unknown if o.key in applied)
            out.print(
                f"server applied {len(applied)} writebacks, none twice: {max(applied.values(), default=0) <= 1}; "
                f"reported succeeded {len(report.succeeded)}, unknown {len(report.unknown)} "
                f"({unknown_applied} of which the server had applied: why unknown writes are never resent)",
                highlight=False,
            )
            await demo_push_loop(server)

    run_or_exit(run())


async def demo_push_loop(server: FakeISales) -> None:
    """The callback side: the fake pushes call results to a receiver whose callback fails
    once, so the server's re-push is seen to deliver every result exactly once."""
    received: list[str] = []
    failures = [True]

    async def callback(results: Sequence[CallResult]) -> None:
        if failures and failures.pop():
            raise RuntimeError("simulated outage of the user's store")
        received.extend(r.call_id or "" for r in results)

    token = secrets.token_urlsafe(16)
    receiver = PushReceiver(callback, token=token)
    runner = web.AppRunner(aiohttp_app(receiver), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/?token={token}"
    statuses = []
    pushed = 0
    with logging_silenced("isales_async.push"):
        for start in range(0, 60, 20):
            records = server.push_records(count=20, start=start)
            pushed += len(records)
            statuses.append(await server.push_results(url, records))
            statuses.append(await server.push_results(url, records[:5]))  # a duplicate re-push
    await runner.cleanup()
    out.print(
        f"callback loop: pushed {pushed} call results (push statuses {statuses}); the callback received "
        f"{len(received)}, {len(set(received))} distinct: each exactly once",
        highlight=False,
    )


@contextlib.contextmanager
def logging_silenced(name: str) -> Iterator[None]:
    """The logger ``name`` switched off for the block: the demo's deliberate failures are not news."""
    logger = logging.getLogger(name)
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before
