"""The ``isales journal`` commands: a writeback journal's counts and its unwritten records, read-only."""

from __future__ import annotations

import contextlib
import datetime as _dt
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from .. import Journal, JournalError, Status
from ._followup import outcome_action
from ._output import exit_with, json_line, json_option, out, titled_table


@click.group("journal")
def journal_group() -> None:
    """Inspect a writeback journal without SQL: read-only, and safe while a run holds it."""


def _read_journal(path: Path) -> Journal:
    try:
        return Journal(path, readonly=True)
    except JournalError as exc:
        exit_with(exc)


@journal_group.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def journal_show(file: Path, as_json: bool) -> None:
    """Count the records of the journal FILE by state."""
    with _read_journal(file) as journal:
        try:
            counts = journal.counts()
            runs, last = journal.runs()
            schema = journal.schema_version()
        except JournalError as exc:
            exit_with(exc)
    last_run = _dt.datetime.fromtimestamp(last, _dt.timezone.utc).isoformat(timespec="seconds") if last else None
    if as_json:
        json_line(
            {
                "journal": str(file),
                "schema": schema,
                "runs": runs,
                "last_run": last_run,
                "counts": {status.value: n for status, n in counts.items()},
                "total": sum(counts.values()),
            }
        )
        return
    rows: list[list[Any]] = [[status.value, n, JOURNAL_STATES[status]] for status, n in counts.items()]
    rows.append(["total", sum(counts.values()), f"{runs} runs, the last started {last_run or 'never'}"])
    out.print(titled_table(f"Journal {file} (schema {schema})", ["state", "records", "meaning"], rows))


JOURNAL_STATES = {
    Status.QUEUED: "taken, not sent (the run stopped): a re-run sends it",
    Status.SENDING: "was on the wire when a run died: in doubt, not resent",
    Status.SUCCEEDED: "applied",
    Status.FAILED: "refused (invalid or a business error): sent again once changed, or with --retry-failed",
    Status.NOT_SENT: "not applied (connection, 401, 429, 503, or undefined in the tenant): a re-run sends it",
    Status.UNKNOWN: "sent, fate unknown: in doubt, resent only with --resend-unknown",
}


@journal_group.command("export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: stdout")
def journal_export(file: Path, output: Path | None) -> None:
    """Write the in-doubt (sending, unknown) and failed records of the journal FILE as JSON Lines."""
    with (
        _read_journal(file) as journal,
        output.open("wb") if output else contextlib.nullcontext(sys.stdout.buffer) as sink,
    ):
        try:
            for entry in journal.entries(Status.SENDING, Status.UNKNOWN, Status.FAILED):
                status = "earlier_failed" if entry.status is Status.FAILED else "earlier_unknown"
                line = {**entry.to_json(), "action": outcome_action(status, None, entry.key)}
                sink.write(orjson.dumps(line) + b"\n")
        except JournalError as exc:
            exit_with(exc)
