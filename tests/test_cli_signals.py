"""``isales writeback`` as a real subprocess (issue 12): signals, two processes on one journal,
a fatal stop and the command that resumes it, file encodings.

The fake server runs in a thread of the test process. Requests are held with a ``HANG``
fault; an ``on_request`` callback sets a ``threading.Event`` once they have all arrived,
and the test waits on that event (or on a line the command prints), never on a sleep.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from isales_async import Journal, Status
from isales_async.testing import FakeISales, Fault

from .server_thread import server_in_thread
from .test_batch import WB, sent_keys
from .test_cli import env_for, write_csv

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

COMMAND = [sys.executable, "-m", "isales_async"]
WAIT = 60  # seconds: a generous bound on waiting for an event, never a sleep


@pytest.fixture
def threaded() -> Iterator[FakeISales]:
    with server_in_thread() as server:
        yield server


def start(server: FakeISales, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *args],
        env={**os.environ, **env_for(server), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(server: FakeISales, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env={**os.environ, **env_for(server), **env}, capture_output=True, text=True, timeout=120
    )


def read_until(stream: object, text: str) -> list[str]:
    """Lines of ``stream`` up to and including the first that contains ``text``.

    Read a byte at a time from the file descriptor: a buffered ``readline`` could take the
    awaited line into its buffer with an earlier one, and ``select`` would then never see it.
    Nothing after the awaited line is consumed, so ``communicate()`` still gets the rest.
    """
    fd = stream.fileno()  # type: ignore[attr-defined]
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    lines: list[str] = []
    line = b""
    try:
        while not lines or text not in lines[-1]:
            assert selector.select(timeout=WAIT), f"no line with {text!r} came; got {lines}"
            byte = os.read(fd, 1)
            assert byte, f"the stream ended before a line with {text!r}; got {lines}"
            line += byte
            if byte == b"\n":
                lines.append(line.decode(errors="replace"))
                line = b""
    finally:
        selector.close()
    return lines


def hold(server: FakeISales, count: int) -> threading.Event:
    """Hold the first ``count`` writebacks at the server; the event is set once all have arrived."""
    arrived = threading.Event()
    server.inject(Fault.hang(endpoint=WB, times=count))
    server.on_request.append(lambda _: len(server.requests_to(WB)) >= count and arrived.set())
    return arrived


def followup_of(source: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in source.with_name(source.name + ".followup.jsonl").read_text().splitlines()]


def resume_command(stderr: str) -> list[str]:
    (line,) = [line for line in stderr.splitlines() if "resume with: " in line]
    words = shlex.split(line.split("resume with: ", 1)[1])
    assert words[:2] == ["isales", "writeback"]
    return words[1:]


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


# -- point 7: signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_the_first_signal_lets_in_flight_requests_finish_then_summarises_and_exits(
    threaded: FakeISales, tmp_path: Path, signum: int, status: int
) -> None:
    source = write_csv(tmp_path / "night.csv", [f"{i},B01,,," for i in range(1, 101)])
    arrived = hold(threaded, 4)
    process = start(threaded, "writeback", str(source), "--no-progress", "--concurrency", "4")
    try:
        assert arrived.wait(WAIT), "the four requests never arrived"
        process.send_signal(signum)
        read_until(process.stderr, "stopping: no new records")
        threaded.release()
        stdout, stderr = process.communicate(timeout=WAIT)
    finally:
        kill(process)
    assert process.returncode == status
    assert "Writeback summary" in stdout and "Traceback" not in stderr
    assert f"stopped by {signal.Signals(signum).name}; resume with: isales writeback {source}" in stderr
    assert threaded.applied_counts() == {"1": 1, "2": 1, "3": 1, "4": 1}  # the four in flight, nothing new
    with Journal(source.with_name("night.csv.journal.sqlite"), readonly=True) as journal:
        assert journal.counts()[Status.SUCCEEDED] == 4
        assert journal.counts()[Status.SENDING] == journal.counts()[Status.UNKNOWN] == 0

    resumed = run(threaded, *resume_command(stderr), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 101)}


def test_a_second_sigint_abandons_the_requests_in_flight_as_in_doubt(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "night.csv", [f"{i},B01,,," for i in range(1, 101)])
    arrived = hold(threaded, 4)
    process = start(threaded, "writeback", str(source), "--no-progress", "--concurrency", "4")
    try:
        assert arrived.wait(WAIT), "the four requests never arrived"
        process.send_signal(signal.SIGINT)
        read_until(process.stderr, "stopping: no new records")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=WAIT)  # the server still holds the four
    finally:
        kill(process)
    assert process.returncode == 130
    assert "abandoning the records in flight" in stderr and "Traceback" not in stderr
    listed = followup_of(source)
    assert sorted((f["status"], f["dataId"]) for f in listed) == [("unknown", str(i)) for i in range(1, 5)]
    assert all(f["message"] and "may have been applied" in str(f["action"]) for f in listed)
    with Journal(source.with_name("night.csv.journal.sqlite"), readonly=True) as journal:
        assert {e.key for e in journal.entries(Status.UNKNOWN)} == {"1", "2", "3", "4"}
        assert journal.count(Status.SENDING) == journal.count(Status.SUCCEEDED) == 0

    threaded.release()  # the server applies the four it held: that is why they are in doubt
    resumed = run(threaded, *resume_command(stderr), "--no-progress")
    assert resumed.returncode == 1  # the four are still listed for follow-up, not resent
    assert sorted(sent_keys(threaded), key=int) == [str(i) for i in range(1, 101)]
    assert {f["status"] for f in followup_of(source)} == {"earlier_unknown"}


# -- point 4: two processes, one journal ----------------------------------------------------------------


def test_a_second_process_on_the_same_journal_refuses_at_once_naming_the_holder(
    threaded: FakeISales, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "shared.csv", [f"{i},B01,,," for i in range(1, 201)])
    arrived = hold(threaded, 2)
    first = start(threaded, "writeback", str(source), "--no-progress", "--concurrency", "2")
    try:
        assert arrived.wait(WAIT), "the first run's requests never arrived"
        second = run(threaded, "writeback", str(source), "--no-progress")
        assert second.returncode == 2
        assert "JournalLockedError" in second.stderr and f"pid {first.pid}" in second.stderr
        assert str(source.with_name("shared.csv.journal.sqlite")) in second.stderr
        assert len(threaded.requests_to(WB)) == 2  # the second run sent nothing
        threaded.release()
        first.communicate(timeout=WAIT)
    finally:
        kill(first)
    assert first.returncode == 0
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 201)}


# -- point 6: a fatal error stops the run -------------------------------------------------------------------


def test_a_wrong_sk_stops_the_run_with_one_line_and_the_command_that_resumes(
    threaded: FakeISales, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "auth.csv", [f"{i},B01,,," for i in range(1, 301)])
    # Unchecked: with the check, a wrong SK fails the definitions fetch and no batch starts.
    wrong = run(
        threaded, "writeback", str(source), "--no-progress", "--concurrency", "4", "--no-check", ISALES_SK="wrong"
    )
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    (why,) = [line for line in wrong.stderr.splitlines() if line.startswith("stopped: ")]
    assert "refused the credentials" in why and "resume with: isales writeback" in why and why.endswith("--no-check")
    assert 1 <= threaded.rejected_auth <= 4 and threaded.applied == []
    listed = followup_of(source)
    assert 1 <= len(listed) <= 4 and {f["status"] for f in listed} == {"not_sent"}
    assert all("run the same command again" in str(f["action"]) for f in listed)

    resumed = run(threaded, *resume_command(wrong.stderr), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 301)}


def test_an_unreachable_server_exits_2_as_the_help_promises(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "down.csv", [f"{i},B01,,," for i in range(1, 3001)])
    with server_in_thread() as server:
        base = {**env_for(server)}
    # The server is closed now: nothing listens on its port.
    result = subprocess.run(
        [*COMMAND, "writeback", str(source), "--no-progress", "--no-check"],  # checked, it would not start
        env={**os.environ, **base},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "stopped: the server is unreachable" in result.stderr
    # Not sent: what was in flight (up to the default concurrency, 10) and what was left of
    # the waves admitted ahead of it, fewer than 10 more.
    assert 1 <= len(followup_of(source)) < 2 * 10


# -- point 8: encodings -----------------------------------------------------------------------------------------

CHINESE = "客户同意续约"


def test_a_gbk_file_is_read_with_encoding_gbk(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "gbk.csv"
    rows = ["dataId,busiResult,subStatus,busiResultDesc,workNo", *(f"{i},B01,,{CHINESE}{i},2033" for i in range(1, 6))]
    source.write_bytes("\r\n".join(rows).encode("gbk") + b"\r\n")
    result = run(threaded, "writeback", str(source), "--no-progress", "--encoding", "gbk")
    assert result.returncode == 0, result.stderr
    assert sorted(w.body["busiResultDesc"] for w in threaded.applied) == [f"{CHINESE}{i}" for i in range(1, 6)]


def test_undecodable_lines_are_malformed_lines_and_the_run_goes_on(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "mixed.csv"
    lines = [
        b"dataId,busiResult,subStatus,busiResultDesc,workNo",
        b"1,B01,,ok,",
        b"2,B01,," + CHINESE.encode("gbk") + b",",  # GBK bytes in a UTF-8 file
        b"3,B01,,ok,",
        b"4,B01,,bad \xff byte,",
        b"5,B01,,ok,",
    ]
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = run(threaded, "writeback", str(source), "--no-progress")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert threaded.applied_counts() == {"1": 1, "3": 1, "5": 1}
    listed = followup_of(source)
    assert [(f["status"], f["line"]) for f in listed] == [("malformed", 3), ("malformed", 5)]
    assert all("is not valid utf-8-sig text" in str(f["message"]) and "--encoding" in str(f["message"]) for f in listed)
    assert "byte 0xFF at busiResultDesc character 5" in str(listed[1]["message"])
    with Journal(source.with_name("mixed.csv.journal.sqlite"), readonly=True) as journal:
        assert journal.counts()[Status.SENDING] == 0 and journal.counts()[Status.SUCCEEDED] == 3
