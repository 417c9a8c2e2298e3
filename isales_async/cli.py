"""The ``isales`` command line (``pip install "isales-async[cli]"``).

Connection settings come from flags or the environment: ``ISALES_BASE_URL``,
``ISALES_AK``, ``ISALES_VDN_ID`` and the secret from ``ISALES_SK`` or ``ISALES_SK_FILE``.
The secret is never a flag: a command line shows in the process list.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import secrets
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import orjson

try:
    import click
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - only without the extra
    raise SystemExit("the isales command needs its extra: pip install 'isales-async[cli]'") from exc

from aiohttp import web

from . import CallResult, ISalesClient, ISalesError, Journal, PushReceiver, ValidationError, Writeback, __version__
from ._batch import BatchReport
from ._batch import Progress as BatchProgress
from ._journal import Status
from .receivers import aiohttp_app
from .testing import DEFAULT_AK, DEFAULT_SK, Chaos, FakeISales, Fault

T = TypeVar("T")
out = Console()
err = Console(stderr=True)


@attrs.define
class Settings:
    base_url: str | None
    ak: str | None
    vdn_id: int | None
    ca_file: str | None
    insecure: bool
    max_concurrency: int

    def client(self) -> ISalesClient:
        sk = _read_secret()
        missing = [
            name
            for name, value in (
                ("--base-url/ISALES_BASE_URL", self.base_url),
                ("--ak/ISALES_AK", self.ak),
                ("--vdn-id/ISALES_VDN_ID", self.vdn_id),
            )
            if not value
        ]
        if sk is None:
            missing.append("ISALES_SK or ISALES_SK_FILE")
        if missing:
            raise click.UsageError("missing settings: " + ", ".join(missing))
        assert self.base_url and self.ak and self.vdn_id and sk
        return ISalesClient(
            self.base_url,
            ak=self.ak,
            sk=sk,
            vdn_id=self.vdn_id,
            ca_file=self.ca_file,
            insecure=self.insecure,
            max_concurrency=self.max_concurrency,
        )


def _read_secret() -> str | None:
    if os.environ.get("ISALES_SK"):
        return os.environ["ISALES_SK"]
    path = os.environ.get("ISALES_SK_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise click.UsageError(f"cannot read ISALES_SK_FILE: {exc.strerror}") from None
    return None


def _run(coro: Awaitable[T]) -> T:
    """Run a command's coroutine; library errors become a clear message and exit status 2."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    except ISalesError as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False, markup=True)
        raise SystemExit(2) from None


def _json_line(obj: Any) -> None:
    data = attrs.asdict(obj) if attrs.has(type(obj)) else obj
    sys.stdout.write(orjson.dumps(data, default=dict, option=orjson.OPT_NAIVE_UTC).decode() + "\n")


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


# -- the group -------------------------------------------------------------------------


@click.group()
@click.version_option(__version__, prog_name="isales", message="%(prog)s %(version)s")
@click.option("--base-url", envvar="ISALES_BASE_URL", help="https://ip:port of CC-iSales [ISALES_BASE_URL]")
@click.option(
    "--ak", envvar="ISALES_AK", help="access key [ISALES_AK]; the SK comes only from ISALES_SK or ISALES_SK_FILE"
)
@click.option("--vdn-id", envvar="ISALES_VDN_ID", type=int, help="VDN, 1-9999 [ISALES_VDN_ID]")
@click.option(
    "--ca-file",
    envvar="ISALES_CA_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle for the server's certificate",
)
@click.option("--insecure", is_flag=True, help="do not verify TLS certificates (warns)")
@click.option("--max-concurrency", default=10, show_default=True, help="requests in flight at once")
@click.option("-v", "--verbose", count=True, help="log retries (-v) or every request (-vv) to stderr")
@click.pass_context
def cli(
    ctx: click.Context,
    base_url: str | None,
    ak: str | None,
    vdn_id: int | None,
    ca_file: str | None,
    insecure: bool,
    max_concurrency: int,
    verbose: int,
) -> None:
    """Query and write CC-iSales outbound-call results."""
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    ctx.obj = Settings(base_url, ak, vdn_id, ca_file, insecure, max_concurrency)


json_option = click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table")
max_items_option = click.option("--max-items", type=int, default=None, help="stop after this many")


@cli.command("obs-codes")
@json_option
@max_items_option
@click.pass_obj
def obs_codes(settings: Settings, as_json: bool, max_items: int | None) -> None:
    """List the OBS outbound-call result codes."""

    async def run() -> None:
        async with settings.client() as client:
            codes = [c async for c in client.obs_result_codes.iter(prefetch=4, max_items=max_items)]
        _show(codes, as_json, "OBS result codes", ["code", "description"], lambda c: [c.obs_code, c.obs_code_desc])

    _run(run())


@cli.command("business-results")
@json_option
@max_items_option
@click.pass_obj
def business_results(settings: Settings, as_json: bool, max_items: int | None) -> None:
    """List the business result definitions and their sub-results."""

    async def run() -> None:
        async with settings.client() as client:
            results = [r async for r in client.business_results.iter(prefetch=4, max_items=max_items)]
        if as_json:
            for result in results:
                _json_line(result)
            return
        rows = []
        for parent in results:
            rows.append([parent.code, parent.name, "parent"])
            rows.extend([f"  {child.code}", f"  {child.name}", "sub-result"] for child in parent.children)
        out.print(_table("Business results", ["code", "name", "level"], rows))

    _run(run())


def _show(items: list[Any], as_json: bool, title: str, columns: list[str], row: Callable[[Any], list[Any]]) -> None:
    if as_json:
        for item in items:
            _json_line(item)
    else:
        out.print(_table(f"{title} ({len(items)})", columns, [row(i) for i in items]))


@cli.group("external-results")
def external_results() -> None:
    """External (display) results: list, show, create, update."""


@external_results.command("list")
@json_option
@click.pass_obj
def external_list(settings: Settings, as_json: bool) -> None:
    async def run() -> None:
        async with settings.client() as client:
            items = [r async for r in client.external_results.iter()]
        _show(
            items,
            as_json,
            "External results",
            ["defId", "display result", "result code"],
            lambda r: [r.def_id, r.display_result, r.result_code],
        )

    _run(run())


@external_results.command("show")
@click.argument("def_id")
@json_option
@click.pass_obj
def external_show(settings: Settings, def_id: str, as_json: bool) -> None:
    async def run() -> None:
        async with settings.client() as client:
            result = await client.external_results.get(def_id)
        _show(
            [result],
            as_json,
            "External result",
            ["defId", "display result", "result code", "OBS codes"],
            lambda r: [r.def_id, r.display_result, r.result_code, ",".join(r.obs_codes)],
        )

    _run(run())


@external_results.command("create")
@click.option("--display-result", required=True)
@click.option("--obs-code", "obs_codes", multiple=True, required=True, help="repeat for each code")
@click.option("--result-code", default=None, help="fewer than 8 characters")
@json_option
@click.pass_obj
def external_create(
    settings: Settings, display_result: str, obs_codes: tuple[str, ...], result_code: str | None, as_json: bool
) -> None:
    async def run() -> None:
        async with settings.client() as client:
            created = await client.external_results.create(display_result, list(obs_codes), result_code)
        _json_line(created) if as_json else out.print(f"created external result {created.def_id}")

    _run(run())


@external_results.command("update")
@click.argument("def_id")
@click.option("--display-result", required=True)
@click.option("--obs-code", "obs_codes", multiple=True, required=True)
@click.pass_obj
def external_update(settings: Settings, def_id: str, display_result: str, obs_codes: tuple[str, ...]) -> None:
    async def run() -> None:
        async with settings.client() as client:
            await client.external_results.update(def_id, display_result, list(obs_codes))
        out.print(f"updated external result {def_id}")

    _run(run())


CALL_COLUMNS = ["callId", "called", "status", "failCode", "resultCode", "time"]


def _call_row(r: Any) -> list[Any]:
    status = r.call_status.name.lower() if hasattr(r.call_status, "name") else r.call_status
    return [r.call_id, r.called, status, r.fail_code, r.result_code, r.call_time_str or r.ack_begin_time]


@cli.command("call-result")
@click.argument("call_id")
@json_option
@click.pass_obj
def call_result(settings: Settings, call_id: str, as_json: bool) -> None:
    """Show the result of one call."""

    async def run() -> None:
        async with settings.client() as client:
            result = await client.call_results.get(call_id)
        _show([result], as_json, "Call result", CALL_COLUMNS, _call_row)

    _run(run())


@cli.command("call-results")
@click.argument("campaign_id")
@click.option("--show-detail", is_flag=True)
@click.option("--begin", type=click.DateTime(["%Y-%m-%d"]), default=None, help="YYYY-MM-DD, with --end")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None)
@max_items_option
@json_option
@click.pass_obj
def call_results(
    settings: Settings, campaign_id: str, show_detail: bool, begin: Any, end: Any, max_items: int | None, as_json: bool
) -> None:
    """List the call results of a campaign."""

    async def run() -> None:
        async with settings.client() as client:
            results = [
                r
                async for r in client.call_results.iter(
                    campaign_id,
                    show_detail=show_detail,
                    begin_time=begin.date() if begin else None,
                    end_time=end.date() if end else None,
                    max_items=max_items,
                    prefetch=4,
                )
            ]
        _show(results, as_json, f"Call results of campaign {campaign_id}", CALL_COLUMNS, _call_row)

    _run(run())


# -- writeback ----------------------------------------------------------------------------


WRITEBACK_COLUMNS = ("dataId", "busiResult", "subStatus", "busiResultDesc", "workNo")


@attrs.frozen
class Malformed:
    line: int
    text: str
    error: str


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def read_records(path: Path, fmt: str, malformed: list[Malformed]) -> Iterator[Writeback]:
    """Stream :class:`Writeback` records from a CSV (with a header) or JSON Lines file.

    A line that cannot be parsed is appended to ``malformed`` with its line number and skipped.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if fmt == "jsonl":
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    data = orjson.loads(line)
                    if not isinstance(data, dict):
                        raise ValueError("not a JSON object")
                    yield Writeback.from_json(data)
                except (ValueError, ValidationError) as exc:
                    malformed.append(Malformed(number, line.rstrip("\n"), str(exc)))
            return
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            if None in row or None in row.values():
                malformed.append(
                    Malformed(
                        number, ",".join(str(v) for v in row.values() if v is not None), "wrong number of columns"
                    )
                )
                continue
            try:
                yield Writeback.from_json(row)
            except ValidationError as exc:
                malformed.append(Malformed(number, ",".join(row.values()), str(exc)))


def check_csv_header(path: Path) -> None:
    """Refuse, before anything is sent, a CSV whose header is not the writeback columns."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    if set(header) - set(WRITEBACK_COLUMNS) or "dataId" not in header:
        raise click.UsageError(
            f"{path.name}: the CSV header must use the columns {','.join(WRITEBACK_COLUMNS)}; got {','.join(header)}"
        )


def _count_lines(path: Path, fmt: str) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - (1 if fmt == "csv" else 0))


def _write_followup(path: Path, report: BatchReport, malformed: list[Malformed], journal: Journal | None) -> int:
    count = 0
    with path.open("wb") as handle:

        def emit(entry: dict[str, Any]) -> None:
            nonlocal count
            handle.write(orjson.dumps(entry) + b"\n")
            count += 1

        for outcome in [*report.failed, *report.unknown]:
            error = outcome.error
            emit(
                {
                    "status": outcome.kind.value,
                    **(outcome.record.to_json() if outcome.record else {"dataId": outcome.data_id}),
                    "error": type(error).__name__ if error else None,
                    "code": getattr(error, "code", None),
                    "message": str(error) if error else None,
                }
            )
        for bad in malformed:
            emit({"status": "malformed", "line": bad.line, "text": bad.text, "message": bad.error})
        if journal is not None:
            this_run = {o.data_id for o in [*report.failed, *report.unknown]}
            for data_id, record, error_type, message in journal.rows(Status.SENDING, Status.UNKNOWN, Status.FAILED):
                if data_id not in this_run:
                    emit(
                        {"status": "earlier-run", "dataId": data_id, **record, "error": error_type, "message": message}
                    )
    return count


async def run_writeback(
    client: ISalesClient,
    records: Iterator[Writeback],
    *,
    total: int | None,
    concurrency: int,
    journal: Journal | None,
    retry_unknown: bool,
    fail_fast: bool,
    show_progress: bool,
) -> BatchReport:
    """Run a batch with a rich progress bar (rate and ETA) on stderr."""
    columns = [
        TextColumn("writing back"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, disable=not show_progress, transient=False) as bar:
        task = bar.add_task("writeback", total=total, rate=0.0)

        def on_progress(p: BatchProgress) -> None:
            bar.update(task, completed=p.done, rate=p.done / p.elapsed if p.elapsed > 0 else 0.0)

        return await client.business_results.write_back_many(
            records,
            concurrency=concurrency,
            journal=journal,
            on_progress=on_progress,
            retry_unknown=retry_unknown,
            fail_fast=fail_fast,
        )


def _print_summary(
    report: BatchReport, malformed: int, journal_path: str | None, followup: Path | None, followup_count: int
) -> None:
    table = Table(title="Writeback summary", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("succeeded", str(len(report.succeeded)))
    table.add_row("failed", str(len(report.failed)))
    table.add_row("unknown (sent, fate unknown, not resent)", str(len(report.unknown)))
    for reason, n in sorted(report.skipped.items()):
        table.add_row(f"skipped: {reason}", str(n))
    table.add_row("malformed input lines", str(malformed))
    table.add_row("elapsed", f"{report.elapsed:.2f} s")
    table.add_row("rate", f"{report.rate:.0f} records/s")
    if journal_path:
        table.add_row("journal", journal_path)
    if followup is not None and followup_count:
        table.add_row("follow-up file", f"{followup} ({followup_count} lines)")
    out.print(table)


@cli.command("writeback")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "jsonl"]), default="auto", show_default=True)
@click.option("--concurrency", default=10, show_default=True, help="records in flight")
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="default: FILE.journal.sqlite (a re-run resumes)",
)
@click.option("--no-journal", is_flag=True, help="do not keep a journal")
@click.option("--retry-unknown", is_flag=True, help="resend records an earlier run left unknown")
@click.option("--fail-fast", is_flag=True, help="stop at the first failure")
@click.option(
    "--followup", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: FILE.followup.jsonl"
)
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def writeback(
    settings: Settings,
    file: Path,
    fmt: str,
    concurrency: int,
    journal_path: Path | None,
    no_journal: bool,
    retry_unknown: bool,
    fail_fast: bool,
    followup: Path | None,
    no_progress: bool,
) -> None:
    """Write back the business results in FILE (CSV or JSON Lines with dataId,busiResult,subStatus,busiResultDesc,workNo).

    Exits 1 when any record is not written (failed, unknown or malformed), 2 on a usage or connection error.
    """
    fmt = _detect_format(file, fmt)
    if fmt == "csv":
        check_csv_header(file)
    journal = None if no_journal else Journal(journal_path or file.with_name(file.name + ".journal.sqlite"))
    followup = followup or file.with_name(file.name + ".followup.jsonl")
    malformed: list[Malformed] = []

    async def run() -> BatchReport:
        async with settings.client() as client:
            return await run_writeback(
                client,
                read_records(file, fmt, malformed),
                total=_count_lines(file, fmt),
                concurrency=concurrency,
                journal=journal,
                retry_unknown=retry_unknown,
                fail_fast=fail_fast,
                show_progress=not no_progress,
            )

    report = _run(run())
    count = _write_followup(followup, report, malformed, journal)
    _print_summary(report, len(malformed), journal.path if journal else None, followup, count)
    if journal is not None:
        journal.close()
    if count:
        raise SystemExit(1)
    followup.unlink(missing_ok=True)


# -- the fake server and the demo ------------------------------------------------------------


@cli.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=28090, show_default=True)
@click.option("--latency", default=0.0, show_default=True, help="seconds added to every answer")
def fake_server(host: str, port: int, latency: float) -> None:
    """Run the embedded fake CC-iSales server until interrupted."""

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


@cli.command("demo")
@click.option("--records", default=3000, show_default=True)
@click.option("--concurrency", default=20, show_default=True)
@click.option("--no-progress", is_flag=True)
def demo(records: int, concurrency: int, no_progress: bool) -> None:
    """Start the embedded fake server and run the main job against it, faults included."""

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
                    _table(
                        f"OBS result codes (first 8 of {len(codes)})",
                        ["code", "description"],
                        [[c.obs_code, c.obs_code_desc] for c in codes[:8]],
                    )
                )
                results = [r async for r in client.business_results.iter()]
                out.print(
                    _table(
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
                        retry_unknown=False,
                        fail_fast=False,
                        show_progress=not no_progress,
                    )
                    journal.close()
            _print_summary(report, 0, None, None, 0)
            for outcome in report.failed[:5]:
                out.print(
                    f"  failed {outcome.data_id}: {type(outcome.error).__name__}: {outcome.error}", highlight=False
                )
            applied = server.applied_counts()
            unknown_applied = sum(1 for o in report.unknown if o.data_id in applied)
            out.print(
                f"server applied {len(applied)} writebacks, none twice: {max(applied.values(), default=0) <= 1}; "
                f"reported succeeded {len(report.succeeded)}, unknown {len(report.unknown)} "
                f"({unknown_applied} of which the server had applied: why unknown writes are never resent)",
                highlight=False,
            )
            await demo_push_loop(server)

    _run(run())


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
    logger = logging.getLogger(name)
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def main() -> None:
    cli()
