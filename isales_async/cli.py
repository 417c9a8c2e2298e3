"""The ``isales`` command line (``pip install "isales-async[cli]"``).

Connection settings come from flags or the environment: ``ISALES_BASE_URL``,
``ISALES_AK``, ``ISALES_VDN_ID`` and the secret from ``ISALES_SK`` or ``ISALES_SK_FILE``.
The secret is never a flag: a command line shows in the process list.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import datetime as _dt
import logging
import os
import re
import secrets
import shlex
import signal
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

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
    from rich.text import Text
    from rich.tree import Tree
except ImportError as _missing_extra:  # pragma: no cover - only without the extra
    raise SystemExit("the isales command needs its extra: pip install 'isales-async[cli]'") from _missing_extra

from aiohttp import web

from . import (
    BatchAbortedError,
    BatchControl,
    BusinessError,
    BusinessResult,
    CallResult,
    CallStatus,
    DefinitionsUnavailableError,
    DuplicateRecordError,
    ISalesClient,
    ISalesError,
    Journal,
    JournalEntry,
    JournalError,
    Outcome,
    PushReceiver,
    Status,
    UndefinedResultError,
    ValidationError,
    Writeback,
    WritebackPlan,
    __version__,
)
from ._batch import BatchReport, refusal_reason
from ._batch import Progress as BatchProgress
from .receivers import aiohttp_app
from .testing import DEFAULT_AK, DEFAULT_SK, Chaos, FakeISales, Fault

T = TypeVar("T")
out: Console = Console()
err: Console = Console(stderr=True)


@attrs.define
class Settings:
    """The connection settings of the group's options, shared by every subcommand."""

    base_url: str | None
    ak: str | None
    vdn_id: int | None
    ca_file: str | None
    insecure: bool
    max_concurrency: int
    trust_env: bool = True

    def client(self) -> ISalesClient:
        """A client from these settings; what is missing is named, a warning is one line on stderr."""
        sk = _read_secret()
        missing = [
            name
            for name, value in (
                ("--base-url/ISALES_BASE_URL", self.base_url),
                ("--ak/ISALES_AK", self.ak),
                ("--vdn-id/ISALES_VDN_ID", self.vdn_id),
            )
            if value is None or value == ""
        ]
        if sk is None:
            missing.append("ISALES_SK or ISALES_SK_FILE")
        if missing:
            raise click.UsageError("missing settings: " + ", ".join(missing))
        assert self.base_url and self.ak and self.vdn_id and sk
        # Recorded under the filters in force (PYTHONWARNINGS, -W), then printed without a source line.
        with warnings.catch_warnings(record=True) as caught:
            client = ISalesClient(
                self.base_url,
                ak=self.ak,
                sk=sk,
                vdn_id=self.vdn_id,
                ca_file=self.ca_file,
                insecure=self.insecure,
                max_concurrency=self.max_concurrency,
                trust_env=self.trust_env,
            )
        for message in dict.fromkeys(str(w.message) for w in caught):
            err.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)
        return client


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
        _exit_with(exc)


def _exit_with(exc: ISalesError) -> NoReturn:
    """Print a library error as one line (unwrapped, so it can be copied) and exit 2."""
    err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False, markup=True, soft_wrap=True)
    if isinstance(exc, DefinitionsUnavailableError):
        err.print(
            "nothing was sent: run the same command again once the definitions can be read, "
            "or pass --no-check to write back without checking",
            highlight=False,
            soft_wrap=True,
        )
    raise SystemExit(2) from None


def _json_line(obj: Any) -> None:
    data = attrs.asdict(obj) if attrs.has(type(obj)) else obj
    # Naive times are the server's local time: written as sent, without an offset.
    sys.stdout.write(orjson.dumps(data, default=dict).decode() + "\n")


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
@click.option(
    "--base-url",
    envvar="ISALES_BASE_URL",
    help="https://ip:port of CC-iSales [ISALES_BASE_URL]; a trailing /rest/isales/v1/openapi is dropped",
)
@click.option(
    "--ak", envvar="ISALES_AK", help="access key [ISALES_AK]; the SK comes only from ISALES_SK or ISALES_SK_FILE"
)
@click.option("--vdn-id", envvar="ISALES_VDN_ID", type=click.IntRange(1, 9999), help="VDN, 1-9999 [ISALES_VDN_ID]")
@click.option(
    "--ca-file",
    envvar="ISALES_CA_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle for the server's certificate",
)
@click.option("--insecure", is_flag=True, help="do not verify TLS certificates (warns)")
@click.option("--max-concurrency", default=10, show_default=True, help="requests in flight at once")
@click.option(
    "--no-proxy",
    is_flag=True,
    help="connect directly: ignore HTTP_PROXY, HTTPS_PROXY and NO_PROXY (honoured by default, as curl does)",
)
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
    no_proxy: bool,
    verbose: int,
) -> None:
    """Query and write CC-iSales outbound-call results.

    Exits 0 on success, 2 on a usage error, a connection, TLS or credentials problem, or
    an error answer of the server (``writeback`` adds 1 and 130/143: see its help).
    """
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    ctx.obj = Settings(base_url, ak, vdn_id, ca_file, insecure, max_concurrency, trust_env=not no_proxy)


json_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines instead of a table"
)
max_items_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--max-items", type=int, default=None, help="stop after this many"
)


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
@click.option("--tree", "as_tree", is_flag=True, help="each business result with its sub-statuses, as a tree")
@click.option("--csv", "as_csv", is_flag=True, help="code,name,parentCode,defLevel rows, to build or audit a mapping")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="with --csv: the file to write",
)
@click.pass_obj
def business_results(
    settings: Settings, as_json: bool, max_items: int | None, as_tree: bool, as_csv: bool, output: Path | None
) -> None:
    """List the business result definitions and their sub-results."""
    if as_json + as_tree + as_csv > 1:
        raise click.UsageError("choose one of --json, --tree and --csv")
    if output is not None and not as_csv:
        raise click.UsageError("--output goes with --csv")

    async def run() -> list[BusinessResult]:
        async with settings.client() as client:
            return [r async for r in client.business_results.iter(prefetch=4, max_items=max_items)]

    results = _run(run())
    if as_json:
        for result in results:
            _json_line(result)
    elif as_tree:
        out.print(definitions_tree(results))
    elif as_csv:
        with output.open("w", newline="", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout) as sink:
            csv.writer(sink).writerows(definition_rows(results))
    else:
        rows = []
        for parent in results:
            rows.append([parent.code, parent.name, "parent"])
            rows.extend([f"  {child.code}", f"  {child.name}", "sub-result"] for child in parent.children)
        out.print(_table("Business results", ["code", "name", "level"], rows))


def definitions_tree(results: Sequence[BusinessResult]) -> Tree:
    """The business results as a tree: each parent, then its sub-statuses (names shown as sent, never as markup)."""
    subs = sum(len(r.children) for r in results)
    tree = Tree(Text(f"Business results ({len(results)}, {subs} sub-statuses)"))
    for parent in results:
        branch = tree.add(_labelled(parent))
        for child in parent.children:
            branch.add(_labelled(child))
    return tree


def _labelled(result: BusinessResult) -> Text:
    return Text.assemble((result.code, "bold"), "  ", result.name or "")


DEFINITION_COLUMNS = ("code", "name", "parentCode", "defLevel")


def definition_rows(results: Sequence[BusinessResult]) -> Iterator[Sequence[str]]:
    """The CSV of ``isales business-results --csv``: a header, then each parent followed by its sub-statuses."""
    yield DEFINITION_COLUMNS
    for parent in results:
        yield parent.code, parent.name or "", "", _def_level(parent.def_level)
        for child in parent.children:
            yield child.code, child.name or "", parent.code, _def_level(child.def_level)


def _def_level(level: object) -> str:
    """``defLevel`` as the API writes it: ``1``, ``2``, another number, or the text the server sent."""
    return "" if level is None else str(int(level)) if isinstance(level, int) else str(level)


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
    """List the external (display) results."""

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
    """Show the external result DEF_ID with its OBS codes."""

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
@click.option("--display-result", required=True, help="the result as agents and reports show it")
@click.option(
    "--obs-code", "obs_codes", multiple=True, required=True, help="an OBS result code it maps; repeat for each"
)
@click.option("--result-code", default=None, help="fewer than 8 characters")
@json_option
@click.pass_obj
def external_create(
    settings: Settings, display_result: str, obs_codes: tuple[str, ...], result_code: str | None, as_json: bool
) -> None:
    """Create an external result; prints its defId."""

    async def run() -> None:
        async with settings.client() as client:
            created = await client.external_results.create(display_result, list(obs_codes), result_code)
        _json_line(created) if as_json else out.print(f"created external result {created.def_id}")

    _run(run())


@external_results.command("update")
@click.argument("def_id")
@click.option("--display-result", required=True, help="the new display result")
@click.option(
    "--obs-code", "obs_codes", multiple=True, required=True, help="the OBS result codes it maps; repeat for each"
)
@click.pass_obj
def external_update(settings: Settings, def_id: str, display_result: str, obs_codes: tuple[str, ...]) -> None:
    """Replace the display result and OBS codes of the external result DEF_ID."""

    async def run() -> None:
        async with settings.client() as client:
            await client.external_results.update(def_id, display_result, list(obs_codes))
        out.print(f"updated external result {def_id}")

    _run(run())


CALL_COLUMNS = ["callId", "called", "status", "failCode", "resultCode", "time"]


def _call_row(r: CallResult) -> list[Any]:
    return [
        r.call_id,
        r.called,
        _status_text(r.call_status),
        r.fail_code,
        r.result_code,
        r.call_time_str or r.ack_begin_time,
    ]


def _status_text(status: CallStatus | None) -> str | None:
    """``succeeded``, ``failed``, or ``unknown (7)`` for a number the API does not document."""
    if status is None:
        return None
    return status.name.lower() if status.known else f"unknown ({status.value})"


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
@click.option("--show-detail", is_flag=True, help="ask the server for each call's details too")
@click.option("--begin", type=click.DateTime(["%Y-%m-%d"]), default=None, help="YYYY-MM-DD, with --end")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="YYYY-MM-DD, with --begin")
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
DEFAULT_ENCODING = "utf-8-sig"
# What errors="surrogateescape" turns an undecodable byte into.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


@attrs.frozen
class Malformed:
    line: int
    text: str
    error: str


@attrs.frozen
class FileRecord(Writeback):
    """A record read from a file, with its line number (not part of its identity), so the
    follow-up file can point at the line."""

    line: int = attrs.field(default=0, eq=False, kw_only=True)

    @classmethod
    def numbered(cls, record: Writeback, line: int) -> FileRecord:
        return cls(
            record.data_id, record.busi_result, record.sub_status, record.busi_result_desc, record.work_no, line=line
        )


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def _undecodable(text: str, encoding: str, where: str = "column") -> str | None:
    """Why ``text`` (read with ``errors="surrogateescape"``) is not valid ``encoding`` text, if it is not;
    ``where`` names what the position counts in."""
    found = None if text.isascii() else _ESCAPED_BYTE.search(text)
    if found is None:
        return None
    byte = ord(found.group()) - 0xDC00
    return (
        f"is not valid {encoding} text (byte 0x{byte:02X} at {where} {found.start() + 1}); "
        "if the file has another encoding, pass it with --encoding (for example --encoding gbk)"
    )


def _printable(text: str) -> str:
    """``text`` with each undecodable byte shown as U+FFFD, so it can be written as JSON."""
    return _ESCAPED_BYTE.sub("\ufffd", text)


def read_records(
    path: Path, fmt: str, malformed: list[Malformed], encoding: str = DEFAULT_ENCODING
) -> Iterator[FileRecord]:
    """Stream records from a CSV (with a header) or JSON Lines file.

    A line that cannot be read (bad JSON or CSV, wrong columns, bytes that are not
    ``encoding`` text) is appended to ``malformed`` with its line number and skipped;
    reading never raises because of one line.
    """
    with path.open(newline="", encoding=encoding, errors="surrogateescape") as handle:
        if fmt == "jsonl":
            yield from _read_jsonl(handle, malformed, encoding)
        else:
            yield from _read_csv(handle, malformed, encoding)


def _read_jsonl(handle: Iterable[str], malformed: list[Malformed], encoding: str) -> Iterator[FileRecord]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        text = line.rstrip("\r\n")
        problem = _undecodable(line, encoding)
        if problem is not None:
            malformed.append(Malformed(number, _printable(text), f"line {number} {problem}"))
            continue
        try:
            data = orjson.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            yield FileRecord.numbered(Writeback.from_json(data), number)
        except (ValueError, ValidationError) as exc:
            malformed.append(Malformed(number, text, f"line {number}: {exc}"))


def _read_csv(handle: Iterable[str], malformed: list[Malformed], encoding: str) -> Iterator[FileRecord]:
    reader = csv.DictReader(handle)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            malformed.append(Malformed(reader.line_num, "", f"line {reader.line_num} cannot be read as CSV: {exc}"))
            continue
        number = reader.line_num
        text = ",".join(str(v) for v in row.values() if v is not None)
        problem = next(
            (p for k, v in row.items() if isinstance(v, str) and (p := _undecodable(v, encoding, f"{k} character"))),
            None,
        )
        if problem is not None:
            malformed.append(Malformed(number, _printable(text), f"line {number} {problem}"))
        elif None in row or None in row.values():
            malformed.append(Malformed(number, text, f"line {number} has the wrong number of columns"))
        else:
            try:
                yield FileRecord.numbered(Writeback.from_json(row), number)
            except ValidationError as exc:
                malformed.append(Malformed(number, text, f"line {number}: {exc}"))


def check_csv_header(path: Path, encoding: str = DEFAULT_ENCODING) -> None:
    """Refuse, before anything is sent, a CSV whose header is not the writeback columns."""
    with path.open(newline="", encoding=encoding, errors="surrogateescape") as handle:
        header = next(csv.reader(handle), [])
    problem = next(
        (p for i, name in enumerate(header, 1) if (p := _undecodable(name, encoding, f"column {i} character"))), None
    )
    if problem is not None:
        raise click.UsageError(f"{path.name}: the CSV header {problem}")
    if set(header) - set(WRITEBACK_COLUMNS) or "dataId" not in header:
        raise click.UsageError(
            f"{path.name}: the CSV header must use the columns {','.join(WRITEBACK_COLUMNS)}; got {','.join(header)}"
        )


def _check_encoding(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter(f"unknown encoding {value!r}") from None
    return value


def _count_lines(path: Path, fmt: str) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - (1 if fmt == "csv" else 0))


# The follow-up file: one JSON object a line, for every record that is not written.

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
        return "it was not sent because the batch stopped: run the same command again to send it"
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
    if isinstance(error, BusinessError):
        return (
            f"correct the record ({error.meaning}), then run again: a changed record is sent again, {RETRY_FAILED_HINT}"
        )
    return "it was not applied: run the same command again to send it"


def _outcome_entry(status: str, outcome: Outcome, stop_reason: str | None) -> dict[str, Any]:
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
        "action": outcome_action(status, error, outcome.key),
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
    report: BatchReport, malformed: Sequence[Malformed], journal: Journal | None
) -> Iterator[dict[str, Any]]:
    """Every record of this input that is not written, each once, with what happened and what to do."""
    for outcome in report.failed:
        yield _outcome_entry(_failed_status(outcome), outcome, report.stop_reason)
    for outcome in report.unknown:
        yield _outcome_entry("unknown", outcome, report.stop_reason)
    for outcome in report.not_sent:
        yield _outcome_entry("not_sent", outcome, report.stop_reason)
    yield from map(_malformed_entry, malformed)
    if journal is not None:
        this_run = {o.key for o in [*report.failed, *report.unknown, *report.not_sent]}
        for entry in journal.entries(Status.FAILED, Status.SENDING, Status.UNKNOWN):
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


def _write_followup(path: Path, entries: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("wb") as handle:
        for entry in entries:
            handle.write(orjson.dumps(entry) + b"\n")
            count += 1
    return count


async def run_writeback(
    client: ISalesClient,
    records: Iterator[Writeback],
    *,
    total: int | None,
    concurrency: int,
    journal: Journal | None,
    fail_fast: bool,
    show_progress: bool,
    retry_failed: bool = False,
    resend_unknown: bool = False,
    control: BatchControl | None = None,
    check_definitions: bool = False,
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
            retry_failed=retry_failed,
            resend_unknown=resend_unknown,
            fail_fast=fail_fast,
            control=control,
            check_definitions=check_definitions,
        )


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
        "stopped": stopped,
        "journal": journal_path,
        "followup": str(followup) if followup is not None else None,
    }


def _print_summary(
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
    if stopped:
        table.add_row("stopped", stopped)
    if journal_path:
        table.add_row("journal", journal_path)
    if followup is not None and followup_count:
        table.add_row("follow-up file", f"{followup} ({followup_count} lines)")
    out.print(table)


@contextlib.contextmanager
def _stopped_by_signals(control: BatchControl) -> Iterator[list[int]]:
    """The first SIGINT/SIGTERM stops the batch gracefully, a second abandons what is in flight.

    Yields the signals received. Where the loop cannot take signal handlers (Windows, a
    thread), Ctrl-C keeps its default effect.
    """
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            control.stop()
            err.print(
                f"{name}: stopping: no new records; waiting for those in flight ({name} again abandons them)",
                highlight=False,
                soft_wrap=True,
            )
        else:
            control.abandon()
            err.print(
                f"{name}: abandoning the records in flight: they are listed as unknown", highlight=False, soft_wrap=True
            )

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handle, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    try:
        yield received
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _resume_command(file: Path, journal_path: Path | None, options: dict[str, Any], flags: Sequence[str] = ()) -> str:
    """The command that resumes this run; never with --retry-failed or --resend-unknown, which
    would resend what this run left in doubt."""
    parts = ["isales", "writeback", str(file)]
    if journal_path is not None:
        parts += ["--journal", str(journal_path)]
    for flag, value in options.items():
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join([*parts, *flags])


def _open_journal(path: Path | None) -> Journal | None:
    if path is None:
        return None
    try:
        return Journal(path)
    except JournalError as exc:
        _exit_with(exc)


@cli.command("writeback")
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
    callback=_check_encoding,
    help="the file's text encoding, e.g. gbk or cp1252 (the default also reads UTF-8 with or without a BOM)",
)
@click.option("--concurrency", default=10, show_default=True, help="records in flight")
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
def writeback(
    settings: Settings,
    file: Path,
    fmt: str,
    encoding: str,
    concurrency: int,
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
    fmt_given = fmt
    fmt = _detect_format(file, fmt)
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
                    journal=journal_file,
                    retry_failed=retry_failed,
                    resend_unknown=resend_unknown,
                    check_definitions=not no_check,
                )

        _finish_dry_run(_run(plan()), malformed, followup_path, as_json)
        return
    journal = _open_journal(journal_file)

    async def run() -> tuple[BatchReport, str | None, list[int]]:
        control = BatchControl()
        with _stopped_by_signals(control) as received:
            async with settings.client() as client:
                try:
                    report = await run_writeback(
                        client,
                        read_records(file, fmt, malformed, encoding),
                        total=_count_lines(file, fmt),
                        concurrency=concurrency,
                        journal=journal,
                        retry_failed=retry_failed,
                        resend_unknown=resend_unknown,
                        fail_fast=fail_fast,
                        show_progress=not no_progress,
                        control=control,
                        check_definitions=not no_check,
                    )
                except BatchAbortedError as exc:
                    return exc.report, exc.reason, received
        return report, None, received

    try:
        report, aborted, received = _run(run())
        count = _write_followup(followup_path, followup_entries(report, malformed, journal))
    finally:
        if journal is not None:
            journal.close()
    stopped = f"by {signal.Signals(received[0]).name}" if received else aborted or report.stop_reason
    journal_shown = journal.path if journal else None
    if as_json:
        _json_line(_summary_json(report, len(malformed), journal_shown, followup_path if count else None, stopped))
    else:
        _print_summary(report, len(malformed), journal_shown, followup_path, count, stopped)
    if aborted or received:
        if journal_file is None:
            resume = "none: no journal was kept, so running the command again sends every record again"
        else:
            options = {
                "--format": fmt_given if fmt_given != "auto" else None,
                "--encoding": encoding if encoding != DEFAULT_ENCODING else None,
                "--followup": followup,
            }
            resume = _resume_command(file, journal_path, options, ["--no-check"] if no_check else [])
        separator = " " if received else ": "
        err.print(f"stopped{separator}{stopped}; resume with: {resume}", highlight=False, soft_wrap=True)
    if received:
        raise SystemExit(128 + received[0])
    if aborted:
        raise SystemExit(2)
    if count:
        raise SystemExit(1)
    followup_path.unlink(missing_ok=True)


def _finish_dry_run(plan: WritebackPlan, malformed: Sequence[Malformed], followup: Path, as_json: bool) -> NoReturn:
    """Write the refusals to the follow-up file, print what a run would do, and exit 0 or 1."""
    count = _write_followup(followup, plan_followup_entries(plan, malformed))
    refused = refused_by_reason(plan.refused, len(malformed))  # counted as a run's summary counts them
    if as_json:
        _json_line(
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
        if count:
            table.add_row("follow-up file", f"{followup} ({count} lines)")
        out.print(table)
    if not count:
        followup.unlink(missing_ok=True)
    raise SystemExit(1 if count else 0)


# -- journal inspection -------------------------------------------------------------------------


@cli.group("journal")
def journal_group() -> None:
    """Inspect a writeback journal without SQL: read-only, and safe while a run holds it."""


def _read_journal(path: Path) -> Journal:
    try:
        return Journal(path, readonly=True)
    except JournalError as exc:
        _exit_with(exc)


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
            _exit_with(exc)
    last_run = _dt.datetime.fromtimestamp(last, _dt.timezone.utc).isoformat(timespec="seconds") if last else None
    if as_json:
        _json_line(
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
    out.print(_table(f"Journal {file} (schema {schema})", ["state", "records", "meaning"], rows))


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
            _exit_with(exc)


# -- the fake server and the demo ------------------------------------------------------------


@cli.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", default=28090, show_default=True, help="the port to listen on")
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
@click.option("--records", default=3000, show_default=True, help="how many records the demo writes back")
@click.option("--concurrency", default=20, show_default=True, help="records in flight")
@click.option("--no-progress", is_flag=True, help="no progress bar on stderr")
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
            unknown_applied = sum(1 for o in report.unknown if o.key in applied)
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
