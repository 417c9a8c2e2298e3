"""Review of issue 19: defects confirmed through the public API and the command line.

Each test states what the issue demands and fails on the code as merged; each is marked
``xfail(strict=True)`` so the suite stays green until the defect is fixed, when the
marker must go.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from isales_async import (
    DefinitionsUnavailableError,
    InvalidParameterError,
    ISalesClient,
    Journal,
    RetryPolicy,
    Writeback,
)
from isales_async.cli import cli
from isales_async.testing import FakeISales, Fault

from .server_thread import server_in_thread
from .test_cli import env_for, invoke, write_csv
from .test_journal import write_legacy_journal

WB = "callBusiResult"
DEFS = "queryBusinessResults"


@pytest.fixture
def threaded() -> Iterator[FakeISales]:
    with server_in_thread() as server:
        yield server


def json_summary(output: str) -> dict[str, Any]:
    (line,) = [line for line in output.splitlines() if line.startswith("{")]
    return orjson.loads(line)  # type: ignore[no-any-return]


def sent_keys(server: FakeISales, since: int = 0) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in server.requests_to(WB)[since:]]


# -- the plan must decide on the journal a run would open, as the run opens it ---------------------------


LEGACY_RECORDS = [
    Writeback(1, "B01", sub_status="B01-2"),  # succeeded, unchanged: skipped
    Writeback(2, "B01", sub_status="B02-1"),  # failed, unchanged: skipped
    Writeback(3, "B03"),  # in doubt: skipped
    Writeback(5, "B05"),  # queued: sent
    Writeback(6, "B06"),  # not sent: sent
    Writeback(7, "B07"),  # "0007" and "7", one in doubt: skipped
    Writeback(9, "B09"),  # new: sent
]


async def test_a_plan_on_a_journal_of_the_previous_version_is_what_the_run_then_does(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "old.journal"
    write_legacy_journal(path)
    plan = await client.business_results.plan_write_back(LEGACY_RECORDS, journal=path, check_definitions=True)
    report = await client.business_results.write_back_many(LEGACY_RECORDS, journal=path, check_definitions=True)
    assert plan.skipped == report.skipped
    assert plan.would_send == len(sent_keys(server)) == 3


async def test_a_plan_on_an_empty_journal_file_is_what_the_run_then_does(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "empty.journal"
    path.write_bytes(b"")
    records = [Writeback(1, "B01"), Writeback(2, "B02")]
    plan = await client.business_results.plan_write_back(records, journal=path)
    report = await client.business_results.write_back_many(records, journal=path)
    assert (plan.would_send, len(report.succeeded), len(sent_keys(server))) == (2, 2, 2)


def newer_schema(tmp_path: Path, threaded: FakeISales) -> Path:
    path = tmp_path / "newer.journal"
    invoke(
        threaded,
        "writeback",
        str(write_csv(tmp_path / "old.csv", ["1,B01,,,"])),
        "--no-progress",
        "--journal",
        str(path),
    )
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize(
    "journal",
    [
        pytest.param(newer_schema, id="newer schema"),
        pytest.param(lambda tmp_path, _: tmp_path / "no-such-dir" / "j.sqlite", id="directory missing"),
    ],
)
def test_a_dry_run_refuses_the_journal_the_run_refuses(threaded: FakeISales, tmp_path: Path, journal: Any) -> None:
    path = journal(tmp_path, threaded)
    source = write_csv(tmp_path / "r.csv", ["2,B01,,,", "3,B02,,,"])
    run, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--journal", str(path))
    dry, output = invoke(threaded, "writeback", str(source), "--dry-run", "--json", "--journal", str(path))
    assert run == 2
    assert dry == run, output


# -- the dry run must take the options the run takes ---------------------------------------------------------


def test_a_dry_run_with_fail_fast_counts_what_the_run_then_sends(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,", "2,B13,,,", *(f"{i},B01,,," for i in range(3, 40))])
    args = ["--json", "--fail-fast", "--concurrency", "1"]
    _, dry = invoke(threaded, "writeback", str(source), "--dry-run", *args)
    _, run = invoke(threaded, "writeback", str(source), "--no-progress", *args)
    assert json_summary(run)["sent"] == 1
    assert json_summary(dry)["would_send"] == json_summary(run)["sent"]


def test_a_dry_run_refuses_the_options_the_run_refuses(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,"])
    run, _ = invoke(threaded, "writeback", str(source), "--no-progress", "--concurrency", "0")
    dry, _ = invoke(threaded, "writeback", str(source), "--dry-run", "--concurrency", "0")
    assert run == 2
    assert dry == run


# -- the dry run must write nothing the run then needs ---------------------------------------------------------------


def test_a_dry_run_keeps_the_follow_up_file_of_the_last_run(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "night.csv", ["1,B01,,,", "2,B02,,,"])
    threaded.inject(Fault.reset(after=True, endpoint=WB))  # record 1: sent, fate unknown
    code, _ = invoke(threaded, "writeback", str(source), "--no-progress")
    followup = source.with_name("night.csv.followup.jsonl")
    before = followup.read_bytes()
    assert code == 1 and b"check dataId 1 on the server" in before

    code, _ = invoke(threaded, "writeback", str(source), "--dry-run")

    assert code == 0  # nothing would be refused
    assert followup.exists() and followup.read_bytes() == before


def test_a_dry_run_adds_no_file_beside_the_journal(threaded: FakeISales, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "night.csv", ["1,B01,,,", "2,B02,,,"])
    assert invoke(threaded, "writeback", str(source), "--no-progress")[0] == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert invoke(threaded, "writeback", str(source), "--dry-run")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_a_run_whose_definitions_cannot_be_fetched_leaves_the_journal_as_it_was(
    threaded: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "old.journal"
    write_legacy_journal(path)
    before = path.read_bytes()
    env = env_for(threaded)
    env["ISALES_SK"] = "wrong"
    source = write_csv(tmp_path / "r.csv", ["1,B01,,,"])
    result = CliRunner().invoke(cli, ["writeback", str(source), "--no-progress", "--journal", str(path)], env=env)
    assert result.exit_code == 2 and "DefinitionsUnavailableError" in result.output
    with Journal(path, readonly=True) as journal:
        assert journal.schema_version() == 0
    assert path.read_bytes() == before


# -- one fetch, shared by the client ---------------------------------------------------------------------------------


async def test_views_of_the_client_share_its_definitions(client: ISalesClient, server: FakeISales) -> None:
    await client.business_results.definitions()
    for attempts in (1, 2, 3):
        view = client.with_options(retry=RetryPolicy(attempts=attempts))
        report = await view.business_results.write_back_many(
            [Writeback(attempts, "B01", sub_status="B01-1")], check_definitions=True
        )
        assert len(report.succeeded) == 1
    assert len(server.requests_to(DEFS)) == 1  # the default tenant is one page


# -- no definitions is no check ---------------------------------------------------------------------------------------


async def test_a_tenant_listing_no_business_result_stops_the_batch_before_it_starts(
    client: ISalesClient, server: FakeISales
) -> None:
    server.business_results = []
    records = [Writeback(i, "B01", sub_status="B01-1") for i in range(1, 1001)]
    with pytest.raises(DefinitionsUnavailableError):
        await client.business_results.write_back_many(records, check_definitions=True)
    assert server.requests_to(WB) == []


# -- the check refuses exactly what the server refuses -----------------------------------------------------------------

LISTED_ODDLY: list[dict[str, Any]] = [
    {"code": "B01", "name": "a", "defLevel": "1", "children": [{"code": "B01-1", "name": "x", "defLevel": "2"}]},
    {"code": "B01", "name": "a again", "defLevel": "1", "children": [{"code": "B01-9", "name": "y", "defLevel": "2"}]},
    {"code": "S9", "name": "a sub-result listed at the top", "defLevel": "2", "children": []},
]


@pytest.mark.parametrize(
    ("busi_result", "sub_status"),
    [
        pytest.param("B01", "B01-9", id="the second listing of a code"),
        pytest.param("S9", None, id="a level-2 item at the top"),
    ],
)
async def test_the_check_refuses_what_the_fake_refuses_and_nothing_else(
    make_client: Any, busi_result: str, sub_status: str | None
) -> None:
    server = FakeISales(business_results=LISTED_ODDLY)
    url = await server.start()
    try:
        async with make_client(base_url=url) as client:
            passes = (await client.business_results.definitions()).refusal(busi_result, sub_status) is None
            try:
                await client.business_results.write_back(1, busi_result, sub_status=sub_status)
                applied = True
            except InvalidParameterError:
                applied = False
    finally:
        await server.close()
    assert passes == applied


# -- re-runs after the tenant is fixed --------------------------------------------------------------------------------


async def test_a_record_the_server_refused_for_the_tenant_is_sent_once_the_tenant_defines_it(
    client: ISalesClient, server: FakeISales, tmp_path: Path
) -> None:
    path = tmp_path / "j"
    records = [Writeback(1, "B13"), Writeback(2, "B01", sub_status="B01-9")]
    first = await client.business_results.write_back_many(records, journal=path)  # unchecked: the server refuses
    assert sorted(getattr(o.error, "code", None) for o in first.failed) == ["0200001", "0200034"]
    server.business_results[0]["children"].append({"code": "B01-9", "name": "new", "defLevel": "2"})
    server.business_results.append({"code": "B13", "name": "new", "defLevel": "1", "children": []})
    again = await client.business_results.write_back_many(records, journal=path, check_definitions=True)
    assert sorted(o.data_id for o in again.succeeded) == [1, 2]


# -- what a refusal says --------------------------------------------------------------------------------------------


async def test_a_sub_status_given_to_a_code_without_any_says_whose_it_is(
    client: ISalesClient, server: FakeISales
) -> None:
    server.business_results.append({"code": "B14", "name": "no sub-statuses", "defLevel": "1", "children": []})
    refused = (await client.business_results.definitions()).refusal("B14", "B02-1")
    assert refused is not None and refused.field == "sub_status"
    assert "it is a sub-status of 'B02'" in str(refused)
