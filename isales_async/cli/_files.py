"""Reading the input files of ``isales writeback``: CSV or JSON Lines, each line alone, in any text encoding."""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs
import click
import orjson

from .. import ValidationError, Writeback
from ..batch._writeback import WRITEBACK_FIELDS

WRITEBACK_COLUMNS = WRITEBACK_FIELDS
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


def detect_format(path: Path, fmt: str) -> str:
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


def check_encoding(ctx: click.Context, param: click.Parameter, value: str) -> str:
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


def count_lines(path: Path, fmt: str) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - (1 if fmt == "csv" else 0))
