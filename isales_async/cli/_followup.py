"""The follow-up file: one JSON object a line for every record that is not written, with what to do about it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from .. import (
    AuthenticationError,
    BusinessError,
    ConnectError,
    DuplicateRecordError,
    Journal,
    JournalEntry,
    JournalError,
    Outcome,
    Status,
    TLSError,
    UndefinedResultError,
    ValidationError,
    WritebackPlan,
)
from ..batch._report import BatchReport
from ..batch._rerun import REFUSED_FOR_DEFINITIONS
from ._files import FileRecord, Malformed
from ._output import err

RETRY_FAILED_HINT = "an unchanged one only with --retry-failed"


def outcome_action(status: str, error: BaseException | None, key: str = "") -> str:
    """What the user can do about a record listed in the follow-up file with ``status``."""
    if status == "duplicate":
        return "remove or merge this line: an earlier line has the same dataId, and only that one was processed"
    if status == "unknown":
        return (
            f"it may have been applied: check dataId {key} on the server; re-runs do not resend it "
            "unless you pass --resend-unknown"
        )
    if status == "not_sent":
        return _not_sent_action(error)
    if status == "earlier_unknown":
        return (
            f"an earlier run left it in doubt (it may have been applied): check dataId {key} on the server; "
            "pass --resend-unknown to send it again"
        )
    if status == "earlier_failed":
        return "it failed in an earlier run: correct it in the file (a changed record is sent again), or pass --retry-failed"
    if isinstance(error, UndefinedResultError):
        closest = f" (closest defined: {', '.join(error.suggestions)})" if error.suggestions else ""
        return (
            f"correct {error.field} on this line{closest}, or define it in the tenant; "
            "then run the same command again: it was not sent, and is checked again"
        )
    if isinstance(error, ValidationError):
        return f"correct {error.field} on this line, then run the same command again"
    if isinstance(error, BusinessError) and error.code in REFUSED_FOR_DEFINITIONS:
        return (
            f"correct the record ({error.meaning}), or define its busiResult/subStatus in the tenant; "
            "then run the same command again: a changed record is sent again, an unchanged one once "
            "the check finds the tenant defines it (not with --no-check)"
        )
    if isinstance(error, BusinessError):
        return (
            f"correct the record ({error.meaning}), then run again: a changed record is sent again, {RETRY_FAILED_HINT}"
        )
    return "it was not applied: run the same command again to send it"


def _not_sent_action(cause: BaseException | None) -> str:
    """What to do about a record the batch stopped before sending, given what stopped it."""
    again = "then run the same command again (the one after 'resume with:') to send it"
    if isinstance(cause, AuthenticationError):
        return (
            "it was not sent: the server refused the credentials (HTTP 401); fix the AK/SK "
            f"(--ak or ISALES_AK, ISALES_SK or ISALES_SK_FILE) and check the clock, {again}"
        )
    if isinstance(cause, TLSError):
        return f"it was not sent: TLS failed; fix --ca-file or the server's certificate, {again}"
    if isinstance(cause, ConnectError):
        return f"it was not sent: the server was unreachable; once it answers, {again}"
    if isinstance(cause, JournalError):
        return f"it was not sent: the journal failed; fix its disk or file, {again}"
    return "it was not sent because the batch stopped: run the same command again to send it"


def _outcome_entry(
    status: str, outcome: Outcome, stop_reason: str | None, cause: BaseException | None = None
) -> dict[str, Any]:
    """The follow-up line of one outcome; ``cause`` is the error that stopped the batch, if one did."""
    record, error = outcome.record, outcome.error
    if error is not None:
        message = str(error)
    elif status == "not_sent":
        message = f"not sent: the batch stopped ({stop_reason or 'stopped'})"
    else:
        message = status
    return {
        "status": status,
        **({"line": record.line} if isinstance(record, FileRecord) else {}),
        **(record.to_json() if record is not None else {"dataId": outcome.data_id}),
        "error": type(error).__name__ if error is not None else None,
        "code": getattr(error, "code", None),
        "message": message,
        "action": outcome_action(status, error or cause, outcome.key),
    }


def _earlier_entry(entry: JournalEntry) -> dict[str, Any]:
    status = "earlier_failed" if entry.status is Status.FAILED else "earlier_unknown"
    data = entry.to_json()
    message = entry.message or (
        "an earlier run stopped (killed, or abandoned) while this record was on the wire; it may have been applied"
    )
    return {
        **data,
        "status": status,
        "message": message,
        "action": outcome_action(status, None, entry.key),
    }


def followup_entries(
    report: BatchReport, malformed: Sequence[Malformed], journal: Journal | None, cause: BaseException | None = None
) -> Iterator[dict[str, Any]]:
    """Every record of this input that is not written, each once, with what happened and what to do.

    ``journal`` is the batch's journal (read-only will do). ``cause`` is the error that stopped the batch, if one did. Records an earlier run left
    failed or in doubt are listed when this input has them (this run skipped them), not
    the rest of a journal that other inputs share.
    """
    for outcome in report.failed:
        yield _outcome_entry(_failed_status(outcome), outcome, report.stop_reason)
    for outcome in report.unknown:
        yield _outcome_entry("unknown", outcome, report.stop_reason)
    for outcome in report.not_sent:
        yield _outcome_entry("not_sent", outcome, report.stop_reason, cause)
    yield from map(_malformed_entry, malformed)
    if journal is not None and report.journal_run is not None:
        this_run = {o.key for o in [*report.failed, *report.unknown, *report.not_sent]}
        for entry in journal.entries(Status.FAILED, Status.SENDING, Status.UNKNOWN, claimed=report.journal_run):
            if entry.key not in this_run:
                yield _earlier_entry(entry)


def plan_followup_entries(plan: WritebackPlan, malformed: Sequence[Malformed]) -> Iterator[dict[str, Any]]:
    """What a dry run writes to the follow-up file: every line a real run would refuse, as it would list it."""
    for outcome in plan.refused:
        yield _outcome_entry(_failed_status(outcome), outcome, None)
    yield from map(_malformed_entry, malformed)


def _failed_status(outcome: Outcome) -> str:
    return "duplicate" if isinstance(outcome.error, DuplicateRecordError) else "failed"


def _malformed_entry(bad: Malformed) -> dict[str, Any]:
    return {
        "status": "malformed",
        "line": bad.line,
        "text": bad.text,
        "message": bad.error,
        "action": f"correct line {bad.line} of the file, then run the same command again",
    }


def write_followup(path: Path, entries: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("wb") as handle:
        for entry in entries:
            handle.write(orjson.dumps(entry) + b"\n")
            count += 1
    return count


@contextlib.contextmanager
def reopened_journal(path: Path | None) -> Iterator[Journal | None]:
    """The journal a run just closed, read-only, for the records earlier runs left unwritten;
    ``None`` (with a warning) when it cannot be read: this run's records are listed anyway."""
    if path is None or not path.exists():
        yield None
        return
    try:
        journal = Journal(path, readonly=True)
    except JournalError as exc:
        err.print(f"warning: the follow-up file omits earlier runs: {exc}", highlight=False, soft_wrap=True)
        yield None
        return
    with journal:
        yield journal
