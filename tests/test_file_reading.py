"""Reading a writeback file line by line (issue 12, points 2, 8 and 9): synchronous unit tests
of the CLI's pure reading parts, without a server."""

from __future__ import annotations

import csv
from pathlib import Path

import click
import pytest

from isales_async.cli._files import Malformed, _undecodable, check_encoding, csv_fields, read_records

HEADER = "dataId,busiResult,subStatus,busiResultDesc,workNo"


def test_a_csv_line_is_parsed_alone() -> None:
    assert csv_fields('1,B01,,"a, quoted ""desc""",2033\r\n') == ["1", "B01", "", 'a, quoted "desc"', "2033"]
    assert csv_fields("\r\n") == []
    with pytest.raises(csv.Error):
        csv_fields('3,B01,,"customer said: call later,\n')  # the quote never closes on its line
    with pytest.raises(csv.Error):
        csv_fields('4,B01,,"quoted" then text,\n')


def test_an_unterminated_quote_is_one_malformed_line_and_the_next_lines_are_read(tmp_path: Path) -> None:
    source = tmp_path / "quote.csv"
    source.write_text(f'{HEADER}\n1,B01,,,\n2,B01,,"open,\n3,B01,,,\n\n4,B01,,x\n', encoding="utf-8")
    malformed: list[Malformed] = []
    records = list(read_records(source, "csv", malformed))
    assert [(r.data_id, r.line) for r in records] == [("1", 2), ("3", 4)]
    assert [(m.line, m.text) for m in malformed] == [(3, '2,B01,,"open,'), (6, "4,B01,,x")]
    assert "cannot be read as CSV" in malformed[0].error and "wrong number of columns" in malformed[1].error


def test_an_undecodable_utf16_unit_is_a_malformed_line_of_its_own(tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    body = "2,B01".encode("utf-16-le") + b"\x00\xd8" + "\n3,B01\n".encode("utf-16-le")
    source.write_bytes("dataId,busiResult\n1,B01\n".encode("utf-16") + body)
    malformed: list[Malformed] = []
    assert [r.data_id for r in read_records(source, "csv", malformed, "utf-16")] == ["1", "3"]
    (bad,) = malformed
    assert bad.line == 3 and bad.text == "2,B01\ufffd\ufffd"
    assert "is not valid utf-16 text (bytes 0x00 0xD8 at busiResult character 4)" in bad.error


def test_undecodable_bytes_are_named_with_their_position() -> None:
    assert _undecodable("plain", "utf-8") is None
    assert _undecodable("ok \u00e9", "utf-8") is None
    problem = _undecodable("bad \udcff byte", "utf-8")
    assert problem is not None and problem.startswith("is not valid utf-8 text (byte 0xFF at column 5)")


@pytest.mark.parametrize("encoding", ["hex", "rot13", "zip", "base64", "idna", "no-such-codec"])
def test_only_a_text_encoding_that_decodes_line_by_line_is_accepted(encoding: str) -> None:
    with pytest.raises(click.BadParameter, match=encoding):
        check_encoding(click.Context(click.Command("x")), click.Option(["--encoding"]), encoding)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "gbk", "cp1252", "latin-1"])
def test_text_encodings_are_accepted(encoding: str) -> None:
    assert check_encoding(click.Context(click.Command("x")), click.Option(["--encoding"]), encoding) == encoding
