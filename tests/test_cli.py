"""The ``isales`` command line against the fake server (run in a thread)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from isales_async.cli import cli
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales

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


@pytest.mark.parametrize(
    "args",
    [["obs-codes"], ["business-results"], ["call-results", "1001", "--max-items", "5"], ["external-results", "list"]],
)
def test_tables_for_people(threaded: FakeISales, args: list[str]) -> None:
    code, output = invoke(threaded, *args)
    assert code == 0 and "┃" in output


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
    rows[10] = "11,B01,B02-1,,"  # 0200034
    rows[20] = "21,B01"  # malformed: missing columns
    source = write_csv(tmp_path / "results.csv", rows)
    code, output = invoke(threaded, "writeback", str(source), "--no-progress")
    assert code == 1
    assert "Writeback summary" in output
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 201) if i not in (11, 21)}
    followup = [orjson.loads(line) for line in (tmp_path / "results.csv.followup.jsonl").read_text().splitlines()]
    assert {(f["status"], f.get("dataId"), f.get("line")) for f in followup} == {
        ("failed", "11", None),
        ("malformed", None, 22),
    }

    code, output = invoke(threaded, "writeback", str(source), "--no-progress")
    assert "succeeded in an earlier run" in output
    assert len(threaded.requests_to("callBusiResult")) == 199  # nothing sent again
    assert code == 1  # record 11 is still not written


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
            process.wait(30)
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
        assert len(listed) <= 8  # only what was in flight at the kill is in doubt
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
