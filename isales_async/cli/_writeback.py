"""The ``isales writeback`` command: the batch with a progress bar, its summary, the dry run."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .. import BatchAbortedError, BatchControl, ISalesClient, Journal, JournalError, Outcome, Writeback, WritebackPlan
from ..batch._engine import DEFAULT_MAX_CONCURRENCY, check_concurrency
from ..batch._report import BatchReport, refusal_reason
from ..batch._report import Progress as BatchProgress
from ._files import (
    DEFAULT_ENCODING,
    Malformed,
    check_csv_header,
    check_encoding,
    count_lines,
    detect_format,
    read_records,
)
from ._followup import followup_entries, plan_followup_entries, reopened_journal, write_followup
from ._output import err, json_line, out, run_or_exit
from ._settings import Settings
from ._signals import Signals, resume_command, with_signals


async def run_writeback(
    client: ISalesClient,
    records: Iterator[Writeback],
    *,
    total: int | None,
    concurrency: int | Literal["auto"],
    journal: Journal | Path | None,
    fail_fast: bool,
    show_progress: bool,
    retry_failed: bool = False,
    resend_unknown: bool = False,
    control: BatchControl | None = None,
    check_definitions: bool = False,
    max_concurrency: int | None = None,
) -> BatchReport:
    """Run a batch with a rich progress bar (rate, the concurrency in force, and ETA) on stderr."""
    columns = [
        TextColumn("writing back"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f}/s"),
        TextColumn("x{task.fields[concurrency]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, disable=not show_progress, transient=False) as bar:
        task = bar.add_task("writeback", total=total, rate=0.0, concurrency=concurrency)

        def on_progress(p: BatchProgress) -> None:
            rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
            bar.update(task, completed=p.done, rate=rate, concurrency=p.concurrency)

        return await client.business_results.write_back_many(
            records,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            journal=journal,
            on_progress=on_progress,
            retry_failed=retry_failed,
            resend_unknown=resend_unknown,
            fail_fast=fail_fast,
            control=control,
            check_definitions=check_definitions,
        )


def parse_concurrency(ctx: click.Context, param: click.Parameter, value: str) -> int | Literal["auto"]:
    """``--concurrency``: a whole number, or ``auto``; the batch checks the number's range."""
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"must be a whole number or auto, got {value!r}") from None


MALFORMED_REASON = "malformed line"


def refused_by_reason(outcomes: Iterable[Outcome], malformed: int) -> dict[str, int]:
    """The records refused before sending, by reason, malformed lines included."""
    reasons = Counter(reason for o in outcomes if (reason := refusal_reason(o.error)) is not None)
    if malformed:
        reasons[MALFORMED_REASON] = malformed
    return dict(sorted(reasons.items()))


def _summary_json(
    report: BatchReport, malformed: int, journal_path: str | None, followup: Path | None, stopped: str | None
) -> dict[str, Any]:
    """The summary of a run as one JSON object, with the keys of the dry run's where they mean the same."""
    refused = refused_by_reason(report.failed, malformed)
    failed_after_sending = len(report.failed) - (sum(refused.values()) - malformed)
    return {
        "dry_run": False,
        "sent": len(report.succeeded) + len(report.unknown) + failed_after_sending,
        "succeeded": len(report.succeeded),
        "failed": len(report.failed),
        "unknown": len(report.unknown),
        "not_sent": len(report.not_sent),
        "skipped": dict(sorted(report.skipped.items())),
        "refused": refused,
        "malformed": malformed,
        "elapsed": round(report.elapsed, 3),
        "concurrency": _concurrency_json(report),
        "stopped": stopped,
        "journal": journal_path,
        "followup": str(followup) if followup is not None else None,
    }


def _concurrency_json(report: BatchReport) -> dict[str, Any] | None:
    c = report.concurrency
    if c is None:
        return None
    return {
        "mode": c.mode,
        "settled": round(c.settled, 1),
        "final": c.final,
        "peak": c.peak,
        "increases": c.increases,
        "decreases": c.decreases,
        "history": [str(change) for change in c.history],
    }


def print_summary(
    report: BatchReport,
    malformed: int,
    journal_path: str | None,
    followup: Path | None,
    followup_count: int,
    stopped: str | None = None,
) -> None:
    table = Table(title="Writeback summary", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("succeeded", str(len(report.succeeded)))
    table.add_row("failed", str(len(report.failed)))
    for reason, n in refused_by_reason(report.failed, 0).items():
        table.add_row(f"  refused before sending: {reason}", str(n))
    table.add_row("unknown (sent, fate unknown, not resent)", str(len(report.unknown)))
    if report.not_sent:
        table.add_row("not sent (the batch stopped; a re-run sends them)", str(len(report.not_sent)))
    for reason, n in sorted(report.skipped.items()):
        table.add_row(f"skipped: {reason}", str(n))
    table.add_row("malformed input lines", str(malformed))
    table.add_row("elapsed", f"{report.elapsed:.2f} s")
    table.add_row("rate", f"{report.rate:.0f} records/s")
    if report.concurrency is not None and report.concurrency.mode == "auto":
        c = report.concurrency
        table.add_row("concurrency (auto)", f"settled {c.settled:.1f}, final {c.final}, peak {c.peak}")
    if stopped:
        table.add_row("stopped", stopped)
    if journal_path:
        table.add_row("journal", journal_path)
    if followup is not None and followup_count:
        table.add_row("follow-up file", f"{followup} ({followup_count} lines)")
    out.print(table)


@click.command("writeback")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "jsonl"]),
    default="auto",
    show_default=True,
    help="the file's format; auto: JSON Lines for .jsonl, .ndjson and .json, else CSV",
)
@click.option(
    "--encoding",
    default=DEFAULT_ENCODING,
    show_default=True,
    callback=check_encoding,
    help="the file's text encoding, e.g. gbk or cp1252 (the default also reads UTF-8 with or without a BOM)",
)
@click.option(
    "--concurrency",
    default="10",
    show_default=True,
    callback=parse_concurrency,
    help="records in flight, or auto: adapt to the server (start at 2, grow while it keeps up, halve on 429/503)",
)
@click.option(
    "--max-concurrency",
    type=int,
    default=None,
    help=f"with --concurrency auto, the highest limit [default: {DEFAULT_MAX_CONCURRENCY}]",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="default: FILE.journal.sqlite (a re-run resumes; one run at a time)",
)
@click.option("--no-journal", is_flag=True, help="do not keep a journal (a re-run then sends everything again)")
@click.option("--retry-failed", is_flag=True, help="resend records that failed in an earlier run, even unchanged")
@click.option(
    "--resend-unknown", is_flag=True, help="resend records an earlier run left in doubt (they may have been applied)"
)
@click.option("--retry-unknown", is_flag=True, hidden=True, help="deprecated alias of --resend-unknown")
@click.option("--fail-fast", is_flag=True, help="stop at the first failure")
@click.option(
    "--followup", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: FILE.followup.jsonl"
)
@click.option("--no-progress", is_flag=True, help="no progress bar on stderr")
@click.option(
    "--no-check",
    is_flag=True,
    help="do not check busiResult and subStatus against the tenant's business-result definitions before sending",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="send nothing: read and check every line, consult the journal (read-only), print what a run would do",
)
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object instead of a table")
@click.pass_obj
@with_signals
def writeback(
    settings: Settings,
    file: Path,
    fmt: str,
    encoding: str,
    concurrency: int | Literal["auto"],
    max_concurrency: int | None,
    journal_path: Path | None,
    no_journal: bool,
    retry_failed: bool,
    resend_unknown: bool,
    retry_unknown: bool,
    fail_fast: bool,
    followup: Path | None,
    no_progress: bool,
    no_check: bool,
    dry_run: bool,
    as_json: bool,
    signals: Signals,
) -> None:
    """Write back the business results in FILE (CSV or JSON Lines with dataId,busiResult,subStatus,busiResultDesc,workNo).

    Each record is first checked against the tenant's business-result definitions
    (fetched once; --no-check skips this): one the tenant does not define is refused
    before sending, with the closest defined codes. Records not written are listed in
    the follow-up file with what to do. The first SIGINT or SIGTERM stops after the
    records in flight (a second abandons them).

    --dry-run does everything but send, and changes no journal: it prints what a run
    would send, skip and refuse, and writes the refusals to the follow-up file.

    Exits 0 when every record is written (with --dry-run: none would be refused), 1 when
    any is not (failed, unknown, malformed, refused), 2 on a usage, connection,
    credentials or journal error, or when the definitions cannot be fetched (nothing
    more, or nothing at all, is sent), 130 or 143 when stopped by SIGINT or SIGTERM.
    """
    fmt = detect_format(file, fmt)
    if fmt == "csv":
        check_csv_header(file, encoding)
    if retry_unknown:
        err.print("warning: --retry-unknown is deprecated; use --resend-unknown", highlight=False, soft_wrap=True)
        resend_unknown = True
    journal_file = None if no_journal else (journal_path or file.with_name(file.name + ".journal.sqlite"))
    followup_path = followup or file.with_name(file.name + ".followup.jsonl")
    malformed: list[Malformed] = []
    if dry_run:

        async def plan() -> WritebackPlan:
            async with settings.client() as client:
                return await client.business_results.plan_write_back(
                    read_records(file, fmt, malformed, encoding),
                    concurrency=concurrency,
                    max_concurrency=max_concurrency,
                    journal=journal_file,
                    fail_fast=fail_fast,
                    retry_failed=retry_failed,
                    resend_unknown=resend_unknown,
                    check_definitions=not no_check,
                )

        async def cancellable_plan() -> WritebackPlan:
            task = asyncio.ensure_future(plan())
            with signals.cancelling(task):
                return await task

        signals.exit_if_received("the dry run started")
        try:
            planned = run_or_exit(cancellable_plan())
        except asyncio.CancelledError:
            signals.exit_if_received("the dry run finished")
            raise
        _finish_dry_run(planned, malformed, followup_path, as_json)
        return
    resume = (
        resume_command(click.get_current_context(), file)
        if journal_file is not None
        else "none: no journal was kept, so running the command again sends every record again"
    )

    # The batch opens the journal itself, after checking the options and fetching the
    # definitions: a run that cannot start leaves the journal exactly as it was.
    async def run() -> tuple[BatchReport, BatchAbortedError | None]:
        control = BatchControl()
        workers = check_concurrency(concurrency, max_concurrency)
        with signals.stopping(control):
            async with settings.client(concurrency_at_least=workers) as client:
                try:
                    report = await run_writeback(
                        client,
                        read_records(file, fmt, malformed, encoding),
                        total=count_lines(file, fmt),
                        concurrency=concurrency,
                        max_concurrency=max_concurrency,
                        journal=journal_file,
                        retry_failed=retry_failed,
                        resend_unknown=resend_unknown,
                        fail_fast=fail_fast,
                        show_progress=not no_progress,
                        control=control,
                        check_definitions=not no_check,
                    )
                except BatchAbortedError as exc:
                    return exc.report, exc
        return report, None

    signals.exit_if_received("the batch started")
    report, aborted = run_or_exit(run(), resume)
    with reopened_journal(journal_file if report.journal_run is not None else None) as journal:
        count, unwritten = _followup_written(
            followup_path, followup_entries(report, malformed, journal, aborted.cause if aborted else None)
        )
    during = signals.during_batch
    stopped = f"by {signal.Signals(during[0]).name}" if during else aborted.reason if aborted else report.stop_reason
    journal_shown = str(journal_file) if journal_file is not None else None
    if as_json:
        json_line(_summary_json(report, len(malformed), journal_shown, followup_path if count else None, stopped))
    else:
        print_summary(report, len(malformed), journal_shown, followup_path, count, stopped)
    if aborted or during:
        separator = " " if during else ": "
        err.print(f"stopped{separator}{stopped}; resume with: {resume}", highlight=False, soft_wrap=True)
    if unwritten:
        err.print(f"[red]error:[/red] {unwritten}", highlight=False, markup=True, soft_wrap=True)
    if signals.status is not None:
        raise SystemExit(signals.status)
    if aborted or unwritten:
        raise SystemExit(2)
    if count:
        raise SystemExit(1)
    followup_path.unlink(missing_ok=True)


def _followup_written(path: Path, entries: Iterable[dict[str, Any]]) -> tuple[int, str | None]:
    """Write the follow-up file: the lines written, and why it could not be written whole, if it could not."""
    try:
        return write_followup(path, entries), None
    except OSError as exc:
        why = exc.strerror or str(exc)
    except JournalError as exc:  # the earlier runs' records could not be read
        why = str(exc)
    return 0, (
        f"the follow-up file {path} could not be written ({why}): the records not written are in the "
        "summary's counts and in the journal (isales journal export JOURNAL)"
    )


def _finish_dry_run(plan: WritebackPlan, malformed: Sequence[Malformed], followup: Path, as_json: bool) -> NoReturn:
    """Write the refusals to the follow-up file, print what a run would do, and exit 0 or 1.

    With nothing to refuse the follow-up file is left as it is: it may be the last run's,
    listing what that run left to do.
    """
    refused = refused_by_reason(plan.refused, len(malformed))  # counted as a run's summary counts them
    count = write_followup(followup, plan_followup_entries(plan, malformed)) if plan.refused or malformed else 0
    if as_json:
        json_line(
            {
                "dry_run": True,
                "would_send": plan.would_send,
                "would_resend": plan.would_resend,
                "would_skip": dict(sorted(plan.skipped.items())),
                "would_refuse": refused,
                "followup": str(followup) if count else None,
            }
        )
    else:
        table = Table(title="Writeback dry run: nothing was sent", title_justify="left", show_header=False)
        table.add_column("what")
        table.add_column("count", justify="right")
        table.add_row("would send", str(plan.would_send))
        table.add_row("  of them again (an earlier run took them)", str(plan.would_resend))
        for reason, n in sorted(plan.skipped.items()):
            table.add_row(f"would skip: {reason}", str(n))
        for reason, n in refused.items():
            table.add_row(f"would refuse: {reason}", str(n))
        if plan.stop_reason:
            table.add_row("would stop early", plan.stop_reason)
        if count:
            table.add_row("follow-up file", f"{followup} ({count} lines)")
        out.print(table)
    raise SystemExit(1 if count else 0)
