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
import functools
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
from typing import IO, Any, NoReturn, TypeVar

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

from .. import (
    AuthenticationError,
    BatchAbortedError,
    BatchControl,
    BusinessError,
    BusinessResult,
    CallResult,
    CallStatus,
    ConnectError,
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
    TLSError,
    UndefinedResultError,
    ValidationError,
    Writeback,
    WritebackPlan,
    __version__,
)
from .._batch import BatchReport, refusal_reason
from .._batch import Progress as BatchProgress
from .._rerun import REFUSED_FOR_DEFINITIONS
from ..receivers import aiohttp_app
from ..testing import DEFAULT_AK, DEFAULT_SK, Chaos, FakeISales, Fault

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


def _run(coro: Awaitable[T], resume: str | None = None) -> T:
    """Run a command's coroutine; library errors become a clear message and exit status 2
    (``resume``: the command that runs it again, printed with the error)."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    except ISalesError as exc:
        _exit_with(exc, resume)


def _exit_with(exc: ISalesError, resume: str | None = None) -> NoReturn:
    """Print a library error as one line (unwrapped, so it can be copied) and exit 2."""
    err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False, markup=True, soft_wrap=True)
    if isinstance(exc, DefinitionsUnavailableError):
        err.print(
            "nothing was sent: run the same command again once the definitions can be read, "
            "or pass --no-check to write back without checking" + (f"; resume with: {resume}" if resume else ""),
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
# The error handler input files are decoded with: each byte a codec cannot decode becomes
# U+DC00 + its value, as with "surrogateescape", but for every byte value, so it also
# carries the errors of multi-byte codecs (a bad UTF-16 unit is 0x00 0xD8; surrogateescape
# refuses bytes below 0x80). Strict decoding never yields such a lone surrogate.
UNDECODABLE = "isales-undecodable"
_ESCAPED_BYTES = re.compile("[\udc00-\udcff]+")


def _escape_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(chr(0xDC00 + byte) for byte in error.object[error.start : error.end]), error.end


codecs.register_error(UNDECODABLE, _escape_undecodable)


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
    """Why ``text`` (decoded with the :data:`UNDECODABLE` handler) is not valid ``encoding`` text,
    if it is not; ``where`` names what the position counts in."""
    found = None if text.isascii() else _ESCAPED_BYTES.search(text)
    if found is None:
        return None
    values = " ".join(f"0x{ord(c) - 0xDC00:02X}" for c in found.group())
    return (
        f"is not valid {encoding} text ({'byte' if len(found.group()) == 1 else 'bytes'} {values} "
        f"at {where} {found.start() + 1}); "
        "if the file has another encoding, pass it with --encoding (for example --encoding gbk)"
    )


def _printable(text: str) -> str:
    """``text`` with each undecodable byte shown as U+FFFD, so it can be written as JSON."""
    return _ESCAPED_BYTES.sub(lambda found: "\ufffd" * len(found.group()), text)


def _open_text(path: Path, encoding: str) -> IO[str]:
    """``path`` decoded incrementally, lines split after decoding (so any codec works), and
    undecodable bytes kept as markers that :func:`_undecodable` finds in their own line."""
    return path.open(newline="", encoding=encoding, errors=UNDECODABLE)


def read_records(
    path: Path, fmt: str, malformed: list[Malformed], encoding: str = DEFAULT_ENCODING
) -> Iterator[FileRecord]:
    """Stream records from a CSV (with a header) or JSON Lines file.

    Each line is read alone: a line that cannot be read (bad JSON or CSV, an
    unterminated quote, wrong columns, bytes that are not ``encoding`` text) is appended
    to ``malformed`` with its line number and skipped, and the next line is read as if
    it had not been there. Reading never raises because of one line; a CSV field
    therefore cannot span lines.
    """
    with _open_text(path, encoding) as handle:
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


def csv_fields(line: str) -> list[str]:
    """The fields of one CSV line, parsed alone (``[]`` for a blank line).

    Raises:
        csv.Error: the line is not CSV, e.g. a quote left open, which must not take the
            lines after it into its field.
    """
    return next(csv.reader([line], strict=True), [])


def _read_csv(handle: Iterable[str], malformed: list[Malformed], encoding: str) -> Iterator[FileRecord]:
    lines = enumerate(handle, 1)
    first = next(lines, None)
    if first is None:
        return
    try:
        header = csv_fields(first[1])
    except csv.Error as exc:
        malformed.append(Malformed(1, _printable(first[1].rstrip("\r\n")), f"line 1 (the header): {exc}"))
        return
    for number, line in lines:
        bad = _malformed_csv_line(number, line, header, encoding)
        if isinstance(bad, Malformed):
            malformed.append(bad)
        elif bad:
            try:
                yield FileRecord.numbered(Writeback.from_json(dict(zip(header, bad, strict=True))), number)
            except ValidationError as exc:
                malformed.append(Malformed(number, line.rstrip("\r\n"), f"line {number}: {exc}"))


def _malformed_csv_line(number: int, line: str, header: Sequence[str], encoding: str) -> Malformed | list[str]:
    """Why line ``number`` is malformed, or its fields (``[]``: a blank line, skipped)."""
    text = line.rstrip("\r\n")
    try:
        fields = csv_fields(line)
    except csv.Error as exc:
        problem = _undecodable(text, encoding)
        reason = f"line {number} {problem}" if problem else f"line {number} cannot be read as CSV: {exc}"
        return Malformed(number, _printable(text), reason)
    problem = next(
        (p for k, v in zip(header, fields, strict=False) if (p := _undecodable(v, encoding, f"{k} character"))),
        None,
    )
    if problem is not None:
        return Malformed(number, _printable(text), f"line {number} {problem}")
    if fields and len(fields) != len(header):
        return Malformed(number, text, f"line {number} has the wrong number of columns")
    return fields


def check_csv_header(path: Path, encoding: str = DEFAULT_ENCODING) -> None:
    """Refuse, before anything is sent, a CSV whose header is not the writeback columns."""
    try:
        with _open_text(path, encoding) as handle:
            first = next(iter(handle), "")
    except UnicodeError as exc:  # a codec's own refusal, e.g. UTF-16 without a byte order mark
        raise click.UsageError(f"{path.name} cannot be read as {encoding}: {exc}") from None
    try:
        header = csv_fields(first)
    except csv.Error as exc:
        raise click.UsageError(f"{path.name}: the CSV header cannot be read: {exc}") from None
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
    """Accept only a text encoding that can decode a file line by line with :data:`UNDECODABLE`."""
    try:
        "".encode(value)  # LookupError for an unknown name and for bytes-to-bytes codecs (hex, zip, rot13)
        codecs.getincrementaldecoder(value)(errors=UNDECODABLE).decode(b"", final=True)
    except LookupError as exc:
        known = "unknown encoding" if "unknown encoding" in str(exc) else "not a text encoding"
        raise click.BadParameter(f"{known} {value!r}") from None
    except (UnicodeError, TypeError) as exc:  # e.g. idna, which cannot mark a bad byte and go on
        raise click.BadParameter(f"{value!r} cannot decode a file line by line: {exc}") from None
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
    journal: Journal | Path | None,
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


class _Signals:
    """SIGINT and SIGTERM for the whole of ``isales writeback``: recorded, never an exception.

    Installed before the command reads anything and kept until it exits, so a signal at
    any moment (checking the header, opening the journal, writing the follow-up file) is
    acted on where stopping is safe, instead of a ``KeyboardInterrupt`` (or the default
    kill of SIGTERM) in the middle of a write. While the batch runs (:meth:`stopping`),
    the first stops it gracefully and a second abandons the records in flight; a dry run
    (:meth:`cancelling`) just stops. Outside the main thread nothing is installed.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.during_batch: list[int] = []
        self._on_signal: Callable[[int], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._record)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    @property
    def status(self) -> int | None:
        """The exit status the first signal asks for (128 + its number), if one came."""
        return 128 + self.received[0] if self.received else None

    def _record(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self._on_signal is not None:
            self._on_signal(signum)

    @contextlib.contextmanager
    def _calling(self, act: Callable[[int], None]) -> Iterator[None]:
        """Run ``act(signum)`` in the running loop for each signal, those already received first."""
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed as the signal came: the command ends anyway
                loop.call_soon_threadsafe(act, signum)  # which also wakes the loop

        self._on_signal = on_signal
        try:
            for signum in self.received:
                act(signum)
            yield
        finally:
            self._on_signal = None

    def stopping(self, control: BatchControl) -> contextlib.AbstractContextManager[None]:
        """While the batch runs: the first signal stops it, a second abandons what is in flight."""

        def act(signum: int) -> None:
            self.during_batch.append(signum)
            name = signal.Signals(signum).name
            if len(self.during_batch) == 1:
                control.stop()
                err.print(
                    f"{name}: stopping: no new records; waiting for those in flight ({name} again abandons them)",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                control.abandon()
                err.print(
                    f"{name}: abandoning the records in flight: they are listed as unknown",
                    highlight=False,
                    soft_wrap=True,
                )

        return self._calling(act)

    def cancelling(self, task: asyncio.Task[Any]) -> contextlib.AbstractContextManager[None]:
        """While ``task`` (which sends nothing) runs: a signal cancels it."""

        def act(signum: int) -> None:
            task.cancel()

        return self._calling(act)

    def exit_if_received(self, doing: str) -> None:
        """Exit with the signal's status if one came before ``doing`` started; nothing was sent."""
        if self.status is not None:
            name = signal.Signals(self.received[0]).name
            err.print(f"stopped by {name} before {doing}: nothing was sent", highlight=False, soft_wrap=True)
            raise SystemExit(self.status)


def _with_signals(command: Callable[..., None]) -> Callable[..., None]:
    """Run ``command`` with :class:`_Signals` installed, passed to it as ``signals``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        with _Signals() as signals:
            command(*args, signals=signals, **kwargs)

    return wrapper


# Options a resume command never repeats: they would resend what this run left in doubt
# or refused, or they are not a run at all.
_NOT_RESUMED = frozenset({"retry_failed", "resend_unknown", "retry_unknown", "dry_run"})


def _flags_given(ctx: click.Context, skip: frozenset[str] = frozenset()) -> list[str]:
    """The options of ``ctx`` given on the command line (not from the environment or a default), as words.

    The SK is never among them: it is never an option.
    """
    words: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None or param.name in skip:
            continue
        if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params.get(param.name)
        name = max(param.opts, key=len)
        if param.count:
            words += [name] * int(value or 0)
        elif param.is_flag and param.secondary_opts and not value:
            words.append(max(param.secondary_opts, key=len))
        elif param.is_flag:
            words += [name] if value else []
        elif param.multiple:
            for item in value or ():
                words += [name, str(item)]
        elif value is not None:
            words += [name, str(value)]
    return words


def _resume_command(ctx: click.Context, file: Path) -> str:
    """The command that resumes this run: the same settings and options as given on the
    command line, never --retry-failed or --resend-unknown, which would resend what this
    run left in doubt."""
    parts = ["isales"]
    if ctx.parent is not None:
        parts += _flags_given(ctx.parent)
    parts += [ctx.info_name or "writeback", str(file), *_flags_given(ctx, _NOT_RESUMED)]
    return shlex.join(parts)


@contextlib.contextmanager
def _reopened(path: Path | None) -> Iterator[Journal | None]:
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
@_with_signals
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
    signals: _Signals,
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
                    concurrency=concurrency,
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
            planned = _run(cancellable_plan())
        except asyncio.CancelledError:
            signals.exit_if_received("the dry run finished")
            raise
        _finish_dry_run(planned, malformed, followup_path, as_json)
        return
    resume = (
        _resume_command(click.get_current_context(), file)
        if journal_file is not None
        else "none: no journal was kept, so running the command again sends every record again"
    )

    # The batch opens the journal itself, after checking the options and fetching the
    # definitions: a run that cannot start leaves the journal exactly as it was.
    async def run() -> tuple[BatchReport, BatchAbortedError | None]:
        control = BatchControl()
        with signals.stopping(control):
            async with settings.client() as client:
                try:
                    report = await run_writeback(
                        client,
                        read_records(file, fmt, malformed, encoding),
                        total=_count_lines(file, fmt),
                        concurrency=concurrency,
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
    report, aborted = _run(run(), resume)
    with _reopened(journal_file if report.journal_run is not None else None) as journal:
        count, unwritten = _followup_written(
            followup_path, followup_entries(report, malformed, journal, aborted.cause if aborted else None)
        )
    during = signals.during_batch
    stopped = f"by {signal.Signals(during[0]).name}" if during else aborted.reason if aborted else report.stop_reason
    journal_shown = str(journal_file) if journal_file is not None else None
    if as_json:
        _json_line(_summary_json(report, len(malformed), journal_shown, followup_path if count else None, stopped))
    else:
        _print_summary(report, len(malformed), journal_shown, followup_path, count, stopped)
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
        return _write_followup(path, entries), None
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
    count = _write_followup(followup, plan_followup_entries(plan, malformed)) if plan.refused or malformed else 0
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
        if plan.stop_reason:
            table.add_row("would stop early", plan.stop_reason)
        if count:
            table.add_row("follow-up file", f"{followup} ({count} lines)")
        out.print(table)
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
