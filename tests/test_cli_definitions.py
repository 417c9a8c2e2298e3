"""Issue 19 on the command line: ``isales writeback`` checks the tenant's definitions by
default, ``--dry-run`` shows what a run would do, ``isales business-results --tree|--csv``."""

from __future__ import annotations

import csv
import hashlib
import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from isales_async import Journal
from isales_async.cli import cli
from isales_async.testing import FakeISales, Fault

from .server_thread import server_in_thread
from .test_cli import env_for, invoke, write_csv

WB = "callBusiResult"
DEFS = "queryBusinessResults"
CHILDLESS = {"code": "B14", "name": "Call back later", "defLevel": "1", "children": []}


@pytest.fixture
def threaded() -> Iterator[FakeISales]:
    with server_in_thread() as server:
        server.business_results.append(CHILDLESS)  # B01-B12, each with -1 to -3, and B14 without any
        yield server


def followup_of(source: Path) -> list[dict[str, Any]]:
    path = source.with_name(source.name + ".followup.jsonl")
    return [orjson.loads(line) for line in path.read_text().splitlines()]


def sent(server: FakeISales) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in server.requests_to(WB)]


def digests(path: Path) -> list[str]:
    """The journal, its write-ahead log and its lock file, as bytes on disk (a missing log has
    no frames, like an empty one: a reader of a journal in WAL mode may create it empty)."""
    return [
        hashlib.sha256(p.read_bytes() if p.exists() else b"").hexdigest()
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + ".lock"))
    ]


def json_summary(output: str) -> dict[str, Any]:
    (line,) = [line for line in output.splitlines() if line.startswith("{")]
    return orjson.loads(line)  # type: ignore[no-any-return]


# -- the check, on by default -------------------------------------------------------------------------------------


def test_writeback_refuses_each_undefined_line_before_sending_and_sends_it_once_the_tenant_defines_it(
    threaded: FakeISales, tmp_path: Path
) -> None:
    rows = [
        "1,B01,B01-1,,",
        "2,B13,,,",  # line 3: undefined
        "3,B01,B02-1,,",  # line 4: another parent's sub-status
        "4,B14,B14-1,,",  # line 5: no sub-statuses, given one
        "5,B12x,,,",  # line 6: a typo
        "6,B02,B02-2,,",
    ]
    source = write_csv(tmp_path / "night.csv", rows)
    code, output = invoke(threaded, "writeback", str(source), "--no-progress", "--json")
    assert code == 1
    assert json_summary(output)["refused"] == {
        "busiResult not defined in the tenant": 2,
        "subStatus given to a busiResult without sub-statuses": 1,
        "subStatus not a sub-status of its busiResult": 1,
    }
    assert sorted(sent(threaded)) == ["1", "6"] and len(threaded.requests_to(DEFS)) == 1
    listed = {f["line"]: f for f in followup_of(source)}
    assert sorted(listed) == [3, 4, 5, 6]
    assert {f["status"] for f in listed.values()} == {"failed"}
    assert {f["error"] for f in listed.values()} == {"UndefinedResultError"}
    assert "busi_result: 'B13' is not a business result this tenant defines" in listed[3]["message"]
    assert "'B02-1' is not a sub-status of 'B01' (it is a sub-status of 'B02')" in listed[4]["message"]
    assert "'B14' has no sub-statuses" in listed[5]["message"]
    assert listed[6]["action"].startswith("correct busi_result on this line (closest defined: B12")
    assert "or define it in the tenant" in listed[3]["action"]

    unchanged = invoke(threaded, "writeback", str(source), "--no-progress")[0]
    assert unchanged == 1 and sorted(sent(threaded)) == ["1", "6"]  # checked again, still refused, still unsent

    threaded.business_results.append({"code": "B13", "name": "new", "defLevel": "1", "children": []})
    again, _ = invoke(threaded, "writeback", str(source), "--no-progress")
    assert again == 1  # lines 4-6 are still refused
    assert sorted(sent(threaded)) == ["1", "2", "6"] and threaded.applied_counts() == {"1": 1, "2": 1, "6": 1}
    assert sorted(f["line"] for f in followup_of(source)) == [4, 5, 6]


def test_no_check_sends_them_and_the_server_refuses_them(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B13,,,", "2,B01,B02-1,,"])
    code, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--no-check")
    assert code == 1 and sorted(sent(threaded)) == ["1", "2"] and threaded.requests_to(DEFS) == []
    assert sorted(f["code"] for f in followup_of(source)) == ["0200001", "0200034"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("failure", ["wrong SK", "unreachable"])
def test_a_run_whose_definitions_cannot_be_fetched_does_not_start(
    threaded: FakeISales, tmp_path: Path, failure: str
) -> None:
    source = write_csv(tmp_path / "r.csv", [f"{i},B01,,," for i in range(1, 501)])
    env = env_for(threaded)
    if failure == "wrong SK":
        env["ISALES_SK"] = "wrong"
    else:
        env["ISALES_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["writeback", str(source), "--no-progress"], env=env)
    assert result.exit_code == 2 and "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error: ")]
    cause = "AuthenticationError" if failure == "wrong SK" else "ConnectError"
    assert error.startswith("error: DefinitionsUnavailableError: ") and f"failed with {cause}" in error
    assert "wrong" not in error.split("failed with", 1)[0]
    assert "or pass --no-check" in result.output
    assert threaded.requests_to(WB) == [] and threaded.rejected_auth == (1 if failure == "wrong SK" else 0)
    # No run begun, nothing recorded: the journal is not even created (it is opened after the fetch).
    assert not source.with_name("r.csv.journal.sqlite").exists()
    assert not source.with_name("r.csv.followup.jsonl").exists()


# -- the dry run ----------------------------------------------------------------------------------------------------


def build_earlier_nights(server: FakeISales, tmp_path: Path, journal: Path) -> None:
    """Earlier runs on ``journal``: 1-10 applied, 11 refused by the server (0200034), 12 in
    doubt (reset after sending), 13 not applied (503 every attempt)."""
    first = write_csv(tmp_path / "first.csv", [*(f"{i},B{i % 12 + 1:02d},,," for i in range(1, 11)), "11,B01,B02-1,,"])
    invoke(server, "writeback", str(first), "--no-progress", "--no-check", "--journal", str(journal))
    server.inject(Fault.reset(after=True, endpoint=WB))
    invoke(
        server,
        "writeback",
        str(write_csv(tmp_path / "n12.csv", ["12,B01,,,"])),
        "--no-progress",
        "--journal",
        str(journal),
    )
    server.inject(Fault.status_code(503, endpoint=WB, times=4))
    invoke(
        server,
        "writeback",
        str(write_csv(tmp_path / "n13.csv", ["13,B01,,,"])),
        "--no-progress",
        "--journal",
        str(journal),
    )


TONIGHT = [
    *(f"{i},B{i % 12 + 1:02d},,," for i in range(1, 6)),  # applied, unchanged: skipped
    "6,B02,B02-1,,",  # applied, changed since: resent
    "7,B13,,,",  # applied before, now mapped to an undefined code: refused
    "11,B01,B02-1,,",  # refused by the server before, unchanged: skipped
    "12,B01,,,",  # in doubt: skipped
    "13,B01,,,",  # never applied: resent
    *(f"{i},B03,B03-2,,2033" for i in range(20, 30)),  # new
    "30,B12x,,,",  # a typo
    "31,B01,B02-1,,",  # another parent's sub-status
    "32,B14,B14-1,,",  # a code without sub-statuses, given one
    "33,,,,",  # busiResult empty
    "x34,B01,,,",  # not a dataId
    "0020,B01,,,",  # dataId 20 again
    f"35,{'B' * 51},,,",  # busiResult too long
    "x,y",  # malformed: the wrong number of columns
    "99000000,B01,,,",  # sent; the server then says it does not exist
]


def test_a_dry_run_sends_and_writes_nothing_and_its_counts_are_what_the_run_then_does(
    threaded: FakeISales, tmp_path: Path
) -> None:
    journal = tmp_path / "night.journal"
    build_earlier_nights(threaded, tmp_path, journal)
    source = write_csv(tmp_path / "tonight.csv", TONIGHT)
    requests, before = len(threaded.requests_to(WB)), digests(journal)

    code, output = invoke(threaded, "writeback", str(source), "--dry-run", "--json", "--journal", str(journal))

    assert code == 1
    assert len(threaded.requests_to(WB)) == requests and digests(journal) == before
    plan = json_summary(output)
    assert plan == {
        "dry_run": True,
        "would_send": 13,
        "would_resend": 2,
        "would_skip": {
            "failed in an earlier run, unchanged since (not resent without retry_failed)": 1,
            "outcome unknown from an earlier run (not resent)": 1,
            "succeeded in an earlier run": 5,
        },
        "would_refuse": {
            "busiResult not defined in the tenant": 2,
            "duplicate dataId": 1,
            "invalid busi_result": 2,
            "invalid data_id": 1,
            "malformed line": 1,
            "subStatus given to a busiResult without sub-statuses": 1,
            "subStatus not a sub-status of its busiResult": 1,
        },
        "followup": str(source.with_name("tonight.csv.followup.jsonl")),
    }
    planned = {(f["status"], f["line"]) for f in followup_of(source)}
    assert len(planned) == sum(plan["would_refuse"].values()) == 9

    code, output = invoke(threaded, "writeback", str(source), "--no-progress", "--json", "--journal", str(journal))

    run = json_summary(output)
    assert code == 1 and run["dry_run"] is False
    assert (run["sent"], run["skipped"], run["refused"]) == (
        plan["would_send"],
        plan["would_skip"],
        plan["would_refuse"],
    )
    assert len(threaded.requests_to(WB)) - requests == plan["would_send"]
    listed = {(f["status"], f.get("line")) for f in followup_of(source)}
    assert planned <= listed
    extra = {
        (f["status"], f.get("dataId"), f.get("code"))
        for f in followup_of(source)
        if (f["status"], f.get("line")) not in planned
    }
    assert extra == {
        ("failed", "99000000", "0200033"),
        ("earlier_failed", "11", "0200034"),
        ("earlier_unknown", "12", None),
    }


def test_a_dry_run_with_nothing_to_refuse_exits_0_and_leaves_no_file_behind(
    threaded: FakeISales, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "clean.csv", ["1,B01,B01-1,,", "2,B14,,,"])
    code, output = invoke(threaded, "writeback", str(source), "--dry-run")
    assert code == 0 and "nothing was sent" in output and "would send" in output
    assert threaded.requests_to(WB) == [] and len(threaded.requests_to(DEFS)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv"]  # no journal, no follow-up file


def test_a_dry_run_does_not_wait_for_a_run_holding_the_journal(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,", "2,B02,,,", "3,B13,,,"])
    invoke(threaded, "writeback", str(source), "--no-progress", "--no-check")
    with Journal(source.with_name("r.csv.journal.sqlite")) as running:
        running.begin_run()  # another run holds the lock meanwhile
        code, output = invoke(threaded, "writeback", str(source), "--dry-run", "--json", "--no-check")
    assert code == 0, output
    assert json_summary(output)["would_skip"] == {
        "failed in an earlier run, unchanged since (not resent without retry_failed)": 1,
        "succeeded in an earlier run": 2,
    }


# -- the definitions as a person wants them ----------------------------------------------------------------------------

ODD_NAMES = [
    {
        "code": "A1",
        "name": 'Agreed, "gladly"',
        "defLevel": "1",
        "children": [
            {"code": "A1-1", "name": "line one\nline two", "defLevel": "2"},
            {"code": "A1-2", "name": "[bold]not markup[/bold]", "defLevel": "2"},
        ],
    },
    {"code": "A2", "name": "No answer", "defLevel": "1", "children": []},
    {"code": "A3", "name": "Odd level", "defLevel": "x", "children": [{"code": "A3-1", "name": "s", "defLevel": "2"}]},
]


@pytest.fixture
def odd() -> Iterator[FakeISales]:
    with server_in_thread(business_results=ODD_NAMES) as server:
        yield server


def test_business_results_as_a_tree(odd: FakeISales) -> None:
    code, output = invoke(odd, "business-results", "--tree")
    assert code == 0
    lines = output.splitlines()

    def at(text: str) -> tuple[int, int]:
        (index,) = [i for i, line in enumerate(lines) if text in line]
        return index, lines[index].index(text)

    parents = [at("A1  Agreed"), at("A2  No answer"), at("A3  Odd level")]
    children = [at("A1-1  line one"), at("A1-2  [bold]not markup[/bold]"), at("A3-1  s")]
    assert [row for row, _ in parents] == sorted(row for row, _ in parents)
    assert parents[0][0] < children[0][0] < children[1][0] < parents[1][0] < parents[2][0] < children[2][0]
    assert len({column for _, column in parents}) == len({column for _, column in children}) == 1
    assert children[0][1] > parents[0][1]  # each sub-status is indented under its parent
    assert "Business results (3, 3 sub-statuses)" in lines[0]


def test_business_results_as_csv_on_stdout_or_in_a_file(odd: FakeISales, tmp_path: Path) -> None:
    expected = [
        ["code", "name", "parentCode", "defLevel"],
        ["A1", 'Agreed, "gladly"', "", "1"],
        ["A1-1", "line one\nline two", "A1", "2"],
        ["A1-2", "[bold]not markup[/bold]", "A1", "2"],
        ["A2", "No answer", "", "1"],
        ["A3", "Odd level", "", "x"],
        ["A3-1", "s", "A3", "2"],
    ]
    code, output = invoke(odd, "business-results", "--csv")
    assert code == 0 and list(csv.reader(io.StringIO(output, newline=""))) == expected
    target = tmp_path / "mapping.csv"
    code, output = invoke(odd, "business-results", "--csv", "--output", str(target))
    assert code == 0 and output == ""
    with target.open(newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == expected
    assert '"Agreed, ""gladly"""' in target.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tree", "--csv"], "choose one of"),
        (["--json", "--tree"], "choose one of"),
        (["--output", "x.csv"], "--output goes with --csv"),
    ],
)
def test_business_results_refuses_options_that_do_not_go_together(
    odd: FakeISales, args: list[str], message: str
) -> None:
    code, output = invoke(odd, "business-results", *args)
    assert code == 2 and message in output and odd.requests == []
