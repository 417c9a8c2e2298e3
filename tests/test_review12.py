"""Defects found reviewing issue 12 (the unattended writeback job), each as a test that fails
on the code as merged. Marked ``xfail(strict=True)``: the suite stays green, and a fix makes
its test pass (and the strict marker then fails, so the marker is removed with the fix)."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from isales_async import BatchControl, ISalesClient, Journal, JournalLockedError, Writeback
from isales_async._retry import CoolDown
from isales_async.batch._rerun import SKIP_SUCCEEDED
from isales_async.cli import cli
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales, Fault

from .conftest import MakeClient
from .server_thread import server_in_thread
from .test_batch import good
from .test_cli import env_for, write_csv


@pytest.fixture
def threaded() -> Iterator[FakeISales]:
    with server_in_thread() as server:
        yield server


def invoke(server: FakeISales, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env if env is not None else env_for(server))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def followup_lines(source: Path) -> list[dict[str, object]]:
    path = source.with_name(source.name + ".followup.jsonl")
    return [orjson.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- points 2 and 9: one bad line must not swallow the lines after it ---------------------------------


def test_a_line_with_an_unterminated_quote_does_not_swallow_the_lines_after_it(
    threaded: FakeISales, tmp_path: Path
) -> None:
    rows = [f"{i},B01,,{'ok' if i != 3 else chr(34) + 'customer said: call later'}," for i in range(1, 11)]
    source = write_csv(tmp_path / "quote.csv", rows)
    code, _, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--concurrency", "1")
    # Today: exit 0, "3 succeeded", records 4-10 never sent and never reported, and record 3
    # written with the rest of the file as its busiResultDesc.
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 11) if i != 3}
    assert code == 1
    assert [(f["status"], f["line"]) for f in followup_lines(source)] == [("malformed", 4)]


# -- point 4: the lock must hold the journal itself, not a name beside it ------------------------------


def test_a_symlink_to_a_held_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nightly.journal"
    link = tmp_path / "current.journal"
    with Journal(path) as holder:
        holder.begin_run()
        link.symlink_to(path)
        with Journal(link) as second, pytest.raises(JournalLockedError):
            second.begin_run()


def test_removing_the_lock_file_of_a_held_journal_does_not_let_a_second_run_in(tmp_path: Path) -> None:
    path = tmp_path / "nightly.journal"
    with Journal(path) as holder:
        holder.begin_run()
        os.unlink(f"{path}.lock")  # an operator's cleanup of "stale" lock files
        with Journal(path) as second, pytest.raises(JournalLockedError):
            second.begin_run()


# -- point 5: a re-run stopped before sending must not forget what was applied ------------------------


async def test_a_changed_record_stopped_before_sending_keeps_what_was_applied(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "nightly.journal"
    applied = Writeback(5, "B02", sub_status="B02-1")
    async with make_client(max_concurrency=1) as client:
        await client.business_results.write_back_many([applied], journal=path)

        # The next night the record changed; the run stops (SIGTERM, 401, outage) before it leaves.
        busy = asyncio.Event()
        server.inject(Fault.hang(endpoint="queryBusinessResults"))
        server.on_request.append(lambda r: r.endpoint == "queryBusinessResults" and busy.set())
        hog = asyncio.ensure_future(client.business_results.iter().__anext__())  # holds the only slot
        await busy.wait()
        control = BatchControl()

        async def tonight() -> AsyncIterator[Writeback]:
            yield Writeback(5, "B03", sub_status="B03-1")  # claimed, then waits for the slot
            control.stop()  # asked for the next record: the first is claimed and waiting

        stopped = await client.business_results.write_back_many(tonight(), concurrency=2, journal=path, control=control)
        assert len(stopped.not_sent) == 1
        server.release()
        await asyncio.gather(hog, return_exceptions=True)

        # The change is reverted: the record the server already has must be skipped, not resent.
        again = await client.business_results.write_back_many([applied], journal=path)
    assert again.skipped == {SKIP_SUCCEEDED: 1}
    assert server.applied_counts() == {"5": 1}


# -- point 10: a Journal object reused for another batch ------------------------------------------------


async def test_a_report_stays_right_after_its_journal_serves_another_batch(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    with Journal(tmp_path / "reused.journal") as journal:
        first = await client.business_results.write_back_many(good(3), journal=journal)
        await client.business_results.write_back_many([Writeback(1, "B05"), Writeback(2, "B05")], journal=journal)
        # Today: len() says 3, iterating gives one outcome, and first.succeeded[2] raises ValueError.
        assert len(first.succeeded) == 3
        assert sorted(o.key for o in first.succeeded) == ["1", "2", "3"]
        assert first.succeeded[2].key in {"1", "2", "3"}


# -- points 6 and 7: the printed resume command must resume -----------------------------------------------


def test_the_resume_command_resumes_when_the_settings_were_flags(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "night.csv", [f"{i},B01,,," for i in range(1, 21)])
    flags = ["--base-url", threaded.base_url, "--ak", DEFAULT_AK, "--vdn-id", "1"]
    code, _, stderr = invoke(
        threaded, *flags, "writeback", str(source), "--no-progress", env={"ISALES_SK": "not-the-secret"}
    )
    assert code == 2
    (line,) = [line for line in stderr.splitlines() if "resume with: " in line]
    words = shlex.split(line.split("resume with: ", 1)[1])
    assert words[0] == "isales"
    code, _, stderr = invoke(threaded, *words[1:], "--no-progress", env={"ISALES_SK": DEFAULT_SK})
    assert code == 0, stderr
    assert threaded.applied_counts() == {str(i): 1 for i in range(1, 21)}


# -- point 9: the follow-up file lists this input's records, and says what helps ---------------------------


def test_a_journal_shared_by_nightly_files_lists_only_this_files_records(threaded: FakeISales, tmp_path: Path) -> None:
    journal = tmp_path / "nightly.sqlite"
    monday = write_csv(tmp_path / "monday.csv", ["1,B01,,,", "2,B01,B02-1,,"])  # 2: 0200034
    # --no-check: record 2 must fail at the server (a definite failure), not be refused before sending.
    code, _, _ = invoke(threaded, "writeback", str(monday), "--no-progress", "--no-check", "--journal", str(journal))
    assert code == 1
    tuesday = write_csv(tmp_path / "tuesday.csv", ["10,B01,,,", "11,B01,,,"])
    code, _, _ = invoke(threaded, "writeback", str(tuesday), "--no-progress", "--no-check", "--journal", str(journal))
    # Today: exit 1, and the follow-up tells the user to correct record 2 "in the file".
    assert followup_lines(tuesday) == []
    assert code == 0


def test_records_stopped_by_a_wrong_sk_say_to_fix_the_credentials(threaded: FakeISales, tmp_path: Path) -> None:
    """With --no-check: by default a wrong SK stops the command at the definitions fetch,
    before any record is taken (test_cli_definitions requires no follow-up file then), so
    only an unchecked run has records that the 401 stopped."""
    source = write_csv(tmp_path / "night.csv", [f"{i},B01,,," for i in range(1, 6)])
    env = {**env_for(threaded), "ISALES_SK": "not-the-secret"}
    code, _, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--no-check", env=env)
    assert code == 2
    actions = [str(f["action"]) for f in followup_lines(source)]
    assert actions and all("fix the AK/SK" in action for action in actions), actions


def test_the_resume_command_repeats_the_options_given_but_never_the_resending_ones(
    threaded: FakeISales, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "night.csv", [f"{i},B01,,," for i in range(1, 4)])
    flags = ["--base-url", threaded.base_url, "--ak", DEFAULT_AK, "--vdn-id", "1", "--max-concurrency", "3"]
    args = ["writeback", str(source), "--no-progress", "--no-check", "--concurrency", "2", "--retry-failed"]
    code, _, stderr = invoke(threaded, *flags, *args, "--resend-unknown", env={"ISALES_SK": "not-the-secret"})
    assert code == 2
    (line,) = [line for line in stderr.splitlines() if "resume with: " in line]
    words = shlex.split(line.split("resume with: ", 1)[1])
    assert words == ["isales", *flags, "writeback", str(source), "--concurrency", "2", "--no-progress", "--no-check"]
    assert "not-the-secret" not in stderr


# -- point 10 (and 6): the follow-up file cannot be written ------------------------------------------------


def test_a_follow_up_file_that_cannot_be_written_still_gives_the_summary(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "night.csv", ["1,B01,,,", "2,,,,"])
    (tmp_path / "night.csv.followup.jsonl").mkdir()  # stands for a full disk or a read-only directory
    code, stdout, stderr = invoke(threaded, "writeback", str(source), "--no-progress")
    assert threaded.applied_counts() == {"1": 1}
    assert "Writeback summary" in stdout and "night.csv.followup.jsonl" in stderr
    assert code == 2


# -- point 7: a signal at any time of the command, not only while the batch runs ---------------------------

SIGNAL_AT = """
import os, signal, sys
from isales_async.cli import _writeback as where, main

phase, name = sys.argv[1], sys.argv[2]
real = getattr(where, phase)

def deliver(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, name))  # a Ctrl-C or a kill arriving at this moment
    return real(*args, **kwargs)

setattr(where, phase, deliver)  # the name the writeback command calls it by
sys.argv = ["isales", *sys.argv[3:]]
main()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "phase", ["check_csv_header", "write_followup"], ids=["before-the-batch", "writing-the-followup"]
)
@pytest.mark.parametrize(("name", "status"), [("SIGINT", 130), ("SIGTERM", 143)], ids=["INT", "TERM"])
def test_a_signal_outside_the_batch_still_summarises_and_exits_with_its_status(
    threaded: FakeISales, tmp_path: Path, phase: str, name: str, status: int
) -> None:
    source = write_csv(tmp_path / "night.csv", ["1,B01,,,", "2,,,,", "3,,,,"])
    process = subprocess.run(
        [sys.executable, "-c", SIGNAL_AT, phase, name, "writeback", str(source), "--no-progress"],
        env={**os.environ, **env_for(threaded)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Aborted!" not in process.stderr and "Traceback" not in process.stderr
    assert process.returncode == status
    if phase == "write_followup":  # the batch ran: its summary and its whole follow-up file
        assert "Writeback summary" in process.stdout
        assert [f["line"] for f in followup_lines(source)] == [3, 4]


# -- point 8: encodings ------------------------------------------------------------------------------------


def test_an_undecodable_line_of_a_utf16_file_is_a_malformed_line(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    text = "dataId,busiResult\n1,B01\n"
    source.write_bytes(
        text.encode("utf-16") + "2,B01".encode("utf-16-le") + b"\x00\xd8" + "\n3,B01\n".encode("utf-16-le")
    )
    code, _, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--encoding", "utf-16")
    assert threaded.applied_counts() == {"1": 1, "3": 1}
    assert [(f["status"], f["line"]) for f in followup_lines(source)] == [("malformed", 3)]
    assert code == 1


@pytest.mark.parametrize("encoding", ["hex", "rot13", "zip"])
def test_an_encoding_that_is_not_a_text_encoding_is_a_usage_error(
    threaded: FakeISales, tmp_path: Path, encoding: str
) -> None:
    source = write_csv(tmp_path / "night.csv", ["1,B01,,,"])
    code, _, stderr = invoke(threaded, "writeback", str(source), "--no-progress", "--encoding", encoding)
    assert code == 2 and encoding in stderr
    assert threaded.requests == []


# -- point 1: the shared pause never outlives the cap (the README's test of it is flaky) ------------------


def test_the_cool_down_never_outlives_the_cap_by_rounding() -> None:
    cool_down, now = CoolDown(), 4.163753125972812  # the example Hypothesis found on 3.11 and 3.13
    assert cool_down.pause(now, 60.0, cap=60.0)
    assert 0.0 < cool_down.wait(now) <= 60.0
