"""The ``isales`` command line against the fake server (run in a thread)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from isales_async import Journal, Status, Writeback
from isales_async.batch._writeback import prepare
from isales_async.cli import cli
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales, Fault

from .server_thread import server_in_thread


@pytest.fixture
def threaded() -> Iterator[FakeISales]:
    with server_in_thread() as server:
        yield server


def env_for(server: FakeISales) -> dict[str, str]:
    return {"ISALES_BASE_URL": server.base_url, "ISALES_AK": DEFAULT_AK, "ISALES_SK": DEFAULT_SK, "ISALES_VDN_ID": "1"}


def invoke(server: FakeISales, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env_for(server), catch_exceptions=False)
    return result.exit_code, result.output


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("dataId,busiResult,subStatus,busiResultDesc,workNo\n" + "\n".join(rows) + "\n")
    return path


def test_obs_codes_as_json_lines(threaded: FakeISales) -> None:
    code, output = invoke(threaded, "obs-codes", "--json")
    lines = [orjson.loads(line) for line in output.splitlines()]
    assert code == 0 and len(lines) == 120
    assert lines[0] == {"obs_code": "00600", "obs_code_desc": "The switch is busy.", "extra": {}}


# Runs the command line given after it, then lists on stderr the package's modules it loaded.
MODULES_LOADED_BY = """
import sys
from isales_async.cli import main
sys.argv = ["isales", *sys.argv[1:]]
try:
    main()
finally:
    sys.stderr.write("\\nloaded: " + " ".join(sorted(m for m in sys.modules if m.startswith("isales_async"))) + "\\n")
"""


def test_a_query_command_does_not_load_the_fake_server(threaded: FakeISales) -> None:
    process = subprocess.run(
        [sys.executable, "-c", MODULES_LOADED_BY, "obs-codes", "--json"],
        env={**os.environ, **env_for(threaded)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = process.stderr.rsplit("loaded: ", 1)[1].split()
    assert process.returncode == 0 and len(process.stdout.splitlines()) == 120
    assert "isales_async.cli._demo" in loaded  # the demo's command is registered, its fake server is not loaded
    assert [name for name in loaded if name.startswith("isales_async.testing")] == []


def first_column(output: str) -> list[str]:
    """The first cell of each data row of a rich table (a wrapped row continues with an empty one)."""
    cells = [line[1:].split("│")[0].strip() for line in output.splitlines() if line.startswith("│")]
    return [cell for cell in cells if cell]


def expected_rows(server: FakeISales, command: str) -> tuple[str, list[str]]:
    """The title and the first column a table of ``command`` must show, from the fake's own data."""
    if command == "obs-codes":
        return "OBS result codes (120)", [c["obsCode"] for c in server.obs_codes]
    if command == "business-results":
        codes = [code for r in server.business_results for code in (r["code"], *(c["code"] for c in r["children"]))]
        return "Business results", codes
    if command == "call-results":
        return "Call results of campaign 1001 (5)", [c["callId"] for c in server.campaign_calls["1001"][:5]]
    return "External results (1)", list(server.external_results)


@pytest.mark.parametrize(
    "args",
    [["obs-codes"], ["business-results"], ["call-results", "1001", "--max-items", "5"], ["external-results", "list"]],
)
def test_tables_for_people(threaded: FakeISales, args: list[str]) -> None:
    if args[0] == "external-results":
        created, _ = invoke(threaded, "external-results", "create", "--display-result", "busy", "--obs-code", "00605")
        assert created == 0
    code, output = invoke(threaded, *args)
    title, rows = expected_rows(threaded, args[0])
    assert code == 0 and output.splitlines()[0].strip() == title
    assert first_column(output) == rows and rows


def test_call_result_and_external_results(threaded: FakeISales) -> None:
    call_id = threaded.campaign_calls["1001"][0]["callId"]
    code, output = invoke(threaded, "call-result", call_id, "--json")
    assert code == 0 and orjson.loads(output)["call_id"] == call_id
    code, output = invoke(
        threaded, "external-results", "create", "--display-result", "no answer", "--obs-code", "00602", "--json"
    )
    def_id = orjson.loads(output)["def_id"]
    assert (
        invoke(threaded, "external-results", "update", def_id, "--display-result", "busy", "--obs-code", "00605")[0]
        == 0
    )
    code, output = invoke(threaded, "external-results", "show", def_id, "--json")
    assert orjson.loads(output)["display_result"] == "busy"


def test_business_errors_exit_2_with_the_code(threaded: FakeISales) -> None:
    code, output = invoke(threaded, "call-result", "0-0")
    assert code == 2 and "0200007" in output


def test_writeback_csv_end_to_end_and_resume(threaded: FakeISales, tmp_path: Path) -> None:
    rows = [f"{i},B01,B01-{i % 3 + 1},,2033" for i in range(1, 201)]
    rows[10] = "11,B01,B02-1,,"  # 0200034 (unchecked: the server refuses it)
    rows[20] = "21,B01"  # malformed: missing columns
    source = write_csv(tmp_path / "results.csv", rows)
    code, output = invoke(threaded, "writeback", str(source), "--no-progress", "--no-check")
    assert code == 1
    assert "Writeback summary" in output
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 201) if i not in (11, 21)}
    followup = [orjson.loads(line) for line in (tmp_path / "results.csv.followup.jsonl").read_text().splitlines()]
    assert {(f["status"], f.get("dataId"), f.get("line")) for f in followup} == {
        ("failed", "11", 12),
        ("malformed", None, 22),
    }

    code, output = invoke(threaded, "writeback", str(source), "--no-progress", "--no-check")
    assert "succeeded in an earlier run" in output
    assert len(threaded.requests_to("callBusiResult")) == 199  # nothing sent again
    assert code == 1  # record 11 is still not written
    followup = [orjson.loads(line) for line in (tmp_path / "results.csv.followup.jsonl").read_text().splitlines()]
    assert {(f["status"], f.get("dataId"), f.get("line")) for f in followup} == {
        ("earlier_failed", "11", None),
        ("malformed", None, 22),
    }


def test_writeback_jsonl(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "results.jsonl"
    source.write_text(
        '{"dataId": 1, "busiResult": "B01"}\nnot json\n{"dataId": "2", "busiResult": "B02", "subStatus": "B02-1"}\n'
    )
    code, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--no-journal")
    assert code == 1 and threaded.applied_counts() == {"1": 1, "2": 1}
    assert '"line":2' in (tmp_path / "results.jsonl.followup.jsonl").read_text()


def test_missing_settings_are_named_and_the_secret_is_not_a_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["obs-codes"],
        env={"ISALES_BASE_URL": "https://h", "ISALES_AK": "a", "ISALES_VDN_ID": "1", "ISALES_SK": ""},
    )
    assert result.exit_code == 2 and "ISALES_SK" in result.output
    assert "--sk" not in CliRunner().invoke(cli, ["--help"]).output


def test_secret_from_file_and_never_printed(threaded: FakeISales, tmp_path: Path) -> None:
    secret = tmp_path / "sk"
    secret.write_text(DEFAULT_SK + "\n")
    env = {**env_for(threaded), "ISALES_SK": "", "ISALES_SK_FILE": str(secret)}
    runner = CliRunner()
    outputs = [
        runner.invoke(cli, ["-vv", *args], env=env).output
        for args in (["obs-codes"], ["call-result", "0-0"], ["business-results", "--json"])
    ]
    assert "00600" in outputs[0]
    assert all(DEFAULT_SK not in text for text in outputs)


def test_demo_finishes_and_shows_its_summary() -> None:
    result = CliRunner().invoke(cli, ["demo", "--records", "400", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Writeback summary" in result.output and "none twice: True" in result.output
    assert "received 60, 60 distinct: each exactly once" in result.output
    assert DEFAULT_SK not in result.output


def test_kill_9_then_rerun_applies_every_record_once(tmp_path: Path) -> None:
    rows = [f"{i},B0{i % 9 + 1},,," for i in range(1, 3001)]
    source = write_csv(tmp_path / "big.csv", rows)
    halfway = threading.Event()
    with server_in_thread(latency=0.002) as server:
        server.on_request.append(lambda _: len(server.applied) >= 1000 and halfway.set())
        env = {**os.environ, **env_for(server)}
        command = [
            sys.executable,
            "-m",
            "isales_async",
            "writeback",
            str(source),
            "--no-progress",
            "--concurrency",
            "8",
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert halfway.wait(60), "the first run never got halfway"
            process.send_signal(signal.SIGKILL)
        finally:
            process.communicate(timeout=30)
        assert len(server.applied) < 3000
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        applied = server.applied_counts()
        assert all(n == 1 for n in applied.values()), "a record was applied twice"
        missing = {str(i) for i in range(1, 3001)} - set(applied)
        followup = tmp_path / "big.csv.followup.jsonl"
        listed = (
            {orjson.loads(line)["dataId"] for line in followup.read_text().splitlines()} if followup.exists() else set()
        )
        assert missing <= listed, "a record neither applied nor listed for follow-up"
        # In doubt: what was in flight at the kill (8), and fewer than 8 more whose intents were
        # committed with their wave, ahead of the workers.
        assert len(listed) < 2 * 8
        assert rerun.returncode == (1 if listed else 0)


def test_fake_server_command_serves_signed_requests(tmp_path: Path) -> None:
    import selectors
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A process started in the background by a shell ignores SIGINT, and a child inherits that:
    # start the server with SIGINT caught (exec resets a caught signal to its default).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "isales_async", "fake-server", "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        assert selector.select(timeout=30), "the fake server printed nothing"
        assert f"127.0.0.1:{port}" in process.stdout.readline()  # type: ignore[union-attr]
        env = {
            "ISALES_BASE_URL": f"http://127.0.0.1:{port}",
            "ISALES_AK": DEFAULT_AK,
            "ISALES_SK": DEFAULT_SK,
            "ISALES_VDN_ID": "1",
        }
        result = CliRunner().invoke(cli, ["obs-codes", "--json", "--max-items", "3"], env=env)
        assert result.exit_code == 0 and len(result.output.splitlines()) == 3
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)  # reads to the end, which closes the pipe, and reaps the process
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise


def test_a_csv_with_unknown_columns_is_refused_before_sending(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("dataId,busiresult\n1,B01\n")
    code, output = invoke(threaded, "writeback", str(source), "--no-progress")
    assert code == 2 and "CSV header" in output
    assert threaded.requests == []


# -- issue 12: the writeback command ----------------------------------------------------------------------


def followup_lines(source: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in source.with_name(source.name + ".followup.jsonl").read_text().splitlines()]


def journal_of(source: Path) -> Path:
    return source.with_name(source.name + ".journal.sqlite")


def leave_in_flight(journal_path: Path, data_id: int) -> None:
    """A row as a run killed while the record was on the wire leaves it: ``sending``, no message."""
    with Journal(journal_path) as journal:
        journal.begin_run()
        record = Writeback(data_id, "B01")
        journal.mark(str(data_id), Status.SENDING, record.to_json(), prepare(record).fingerprint)


def test_every_followup_line_says_what_happened_and_what_to_do(threaded: FakeISales, tmp_path: Path) -> None:
    rows = [
        "1,B01,,,",  # line 2: applied, but the answer is lost: unknown
        "2,B01,,,",
        "3,B01,B02-1,,",  # line 4: 0200034 (unchecked: the server refuses it)
        "4,,,,",  # line 5: busiResult is empty
        "0002,B01,,,",  # line 6: dataId 2 again
        "x,y",  # line 7: wrong number of columns
        "²,B01,,,",  # line 8: not ASCII digits
        "9,B01,,,",  # line 9: in doubt since a killed run
    ]
    source = write_csv(tmp_path / "mixed.csv", rows)
    leave_in_flight(journal_of(source), 9)
    threaded.inject(Fault.reset(after=True, endpoint="callBusiResult"))
    code, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--concurrency", "1", "--no-check")
    assert code == 1
    lines = followup_lines(source)
    assert all(isinstance(f[k], str) and f[k] for f in lines for k in ("status", "message", "action")), lines
    found = {(f["status"], f.get("line"), f.get("dataId")) for f in lines}
    assert found == {
        ("unknown", 2, "1"),
        ("failed", 4, "3"),
        ("failed", 5, "4"),
        ("duplicate", 6, "0002"),
        ("malformed", 7, None),
        ("failed", 8, "²"),
        ("earlier_unknown", None, 9),
    }
    by_status = {(f["status"], f.get("line")): f for f in lines}
    assert by_status[("failed", 4)]["code"] == "0200034" and "correct the record" in str(
        by_status[("failed", 4)]["action"]
    )
    assert "correct busi_result" in str(by_status[("failed", 5)]["action"])
    assert "correct data_id" in str(by_status[("failed", 8)]["action"])
    assert "check dataId 1 on the server" in str(by_status[("unknown", 2)]["action"])
    assert "killed, or abandoned" in str(by_status[("earlier_unknown", None)]["message"])

    code, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--no-check")
    assert code == 1
    again = Counter((f["status"], f.get("line"), f.get("dataId")) for f in followup_lines(source))
    assert again == Counter(
        {
            ("failed", 5, "4"): 1,  # this run's refusals, listed again since they are still not written
            ("duplicate", 6, "0002"): 1,
            ("malformed", 7, None): 1,
            ("failed", 8, "²"): 1,
            ("earlier_failed", None, "3"): 1,  # and the earlier runs' rows, each once
            ("earlier_unknown", None, "1"): 1,
            ("earlier_unknown", None, 9): 1,
        }
    )
    assert all(f["message"] and f["action"] for f in followup_lines(source))
    assert threaded.applied_counts() == {"1": 1, "2": 1}


def test_an_excel_bom_is_fine_and_an_undecodable_json_line_is_malformed(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(b"\xef\xbb\xbfdataId,busiResult,subStatus,busiResultDesc,workNo\r\n1,B01,,,\r\n")
    assert invoke(threaded, "writeback", str(source), "--no-progress")[0] == 0
    jsonl = tmp_path / "bytes.jsonl"
    jsonl.write_bytes(b'{"dataId": 2, "busiResult": "B01"}\n{"dataId": 3, "busiResult": "B\xfe01"}\n')
    code, _ = invoke(threaded, "writeback", str(jsonl), "--no-progress")
    assert code == 1 and threaded.applied_counts() == {"1": 1, "2": 1}
    (line,) = followup_lines(jsonl)
    assert (line["status"], line["line"]) == ("malformed", 2) and "0xFE at column 31" in str(line["message"])


def test_an_unknown_encoding_is_a_usage_error(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,"])
    code, output = invoke(threaded, "writeback", str(source), "--encoding", "klingon")
    assert code == 2 and "unknown encoding" in output and threaded.requests == []


def test_retry_failed_and_resend_unknown_from_the_command_line(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "flags.csv", ["1,B01,,,", "2,B01,B02-1,,"])
    threaded.inject(Fault.reset(after=False, endpoint="callBusiResult"))  # record 1: never processed, in doubt
    invoke(threaded, "writeback", str(source), "--no-progress", "--no-check", "--concurrency", "1")
    invoke(threaded, "writeback", str(source), "--no-progress", "--no-check")
    assert len(threaded.requests_to("callBusiResult")) == 2  # the re-run sent neither
    code, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--no-check", "--retry-failed")
    assert code == 1 and len(threaded.requests_to("callBusiResult")) == 3  # 2 again (it fails again)
    result = CliRunner().invoke(
        cli, ["writeback", str(source), "--no-progress", "--no-check", "--retry-unknown"], env=env_for(threaded)
    )
    assert "--retry-unknown is deprecated" in result.output
    assert threaded.applied_counts() == {"1": 1}


def file_digests(path: Path) -> list[str]:
    """Digests of a journal file and of its write-ahead log."""
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in (path, path.with_name(path.name + "-wal"))]


def test_journal_show_and_export_read_without_writing_even_during_a_run(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,", "2,B01,,,", "3,B01,B02-1,,", "4,B01,,,"])
    threaded.inject(Fault.reset(after=True, endpoint="callBusiResult"))
    invoke(threaded, "writeback", str(source), "--no-progress", "--concurrency", "1", "--no-check")
    path = journal_of(source)
    with Journal(path) as running:
        running.begin_run()  # a run holds the journal's lock meanwhile
        before = file_digests(path)
        code, output = invoke(threaded, "journal", "show", str(path), "--json")
        assert code == 0
        shown = orjson.loads(output)
        assert shown["counts"] == {
            "queued": 0,
            "sending": 0,
            "succeeded": 2,
            "failed": 1,
            "not_sent": 0,
            "unknown": 1,
        }
        assert (shown["total"], shown["schema"], shown["runs"]) == (4, 1, 2)
        code, table = invoke(threaded, "journal", "show", str(path))
        assert code == 0 and all(state.value in table for state in Status) and "--resend-unknown" in table
        code, exported = invoke(threaded, "journal", "export", str(path))
        assert file_digests(path) == before  # neither the journal nor its write-ahead log changed
    assert code == 0
    lines = [orjson.loads(line) for line in exported.splitlines()]
    assert sorted((f["status"], f["dataId"]) for f in lines) == [("failed", "3"), ("unknown", "1")]
    assert all(f["message"] and f["action"] for f in lines)


def test_journal_show_reads_a_journal_of_the_previous_version_without_migrating_it(tmp_path: Path) -> None:
    from .test_journal import write_legacy_journal

    path = tmp_path / "old.journal"
    write_legacy_journal(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = CliRunner().invoke(cli, ["journal", "show", str(path), "--json"])
    assert result.exit_code == 0
    shown = orjson.loads(result.output)
    assert shown["schema"] == 0 and shown["total"] == 9 and shown["counts"]["succeeded"] == 3
    exported = CliRunner().invoke(cli, ["journal", "export", str(path)]).output.splitlines()
    assert len(exported) == 4  # failed 2, sending 3, unknown 4 and 7
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_corrupt_journal_is_one_error_line_and_exit_2(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,"])
    journal_of(source).write_bytes(b"garbage" * 500)
    for args in (["writeback", str(source), "--no-progress"], ["journal", "show", str(journal_of(source))]):
        result = CliRunner().invoke(cli, args, env=env_for(threaded))
        assert result.exit_code == 2, result.output
        assert "JournalError" in result.output and str(journal_of(source)) in result.output
        assert "not a database" in result.output and "Traceback" not in result.output
    assert threaded.requests == []


def test_writeback_with_adaptive_concurrency_reports_where_it_settled(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "auto.csv", [f"{i},B01,B01-1,," for i in range(1, 81)])
    code, output = invoke(
        threaded, "writeback", str(source), "--no-progress", "--concurrency", "auto", "--max-concurrency", "6", "--json"
    )
    assert code == 0, output
    summary = orjson.loads(output.splitlines()[-1])
    assert summary["succeeded"] == 80 and threaded.applied_counts() == {str(i): 1 for i in range(1, 81)}
    concurrency = summary["concurrency"]
    assert concurrency["mode"] == "auto" and 1 <= concurrency["final"] <= concurrency["peak"] <= 6
    assert concurrency["history"][0] == "2@0.0s(start)"
    code, output = invoke(threaded, "writeback", str(source), "--no-progress", "--concurrency", "auto", "--no-journal")
    assert code == 0 and "concurrency (auto)" in output and "settled" in output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--concurrency", "fast"], "--concurrency"),
        (["--concurrency", "4", "--max-concurrency", "8"], "max_concurrency"),
    ],
)
def test_writeback_refuses_bad_concurrency_options(
    threaded: FakeISales, tmp_path: Path, args: list[str], named: str
) -> None:
    source = write_csv(tmp_path / "bad.csv", ["1,B01,B01-1,,"])
    result = CliRunner().invoke(cli, ["writeback", str(source), "--no-progress", *args], env=env_for(threaded))
    assert result.exit_code == 2 and named in result.output
    assert not threaded.requests_to("callBusiResult")
