"""The query commands: ``obs-codes``, ``business-results``, ``external-results`` and ``call-result(s)``."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

from .. import BusinessResult, CallResult, CallStatus
from ._output import json_line, json_option, max_items_option, out, run_or_exit, show_items, titled_table
from ._settings import Settings


@click.command("obs-codes")
@json_option
@max_items_option
@click.pass_obj
def obs_codes(settings: Settings, as_json: bool, max_items: int | None) -> None:
    """List the OBS outbound-call result codes."""

    async def run() -> None:
        async with settings.client() as client:
            codes = [c async for c in client.obs_result_codes.iter(prefetch=4, max_items=max_items)]
        show_items(codes, as_json, "OBS result codes", ["code", "description"], lambda c: [c.obs_code, c.obs_code_desc])

    run_or_exit(run())


@click.command("business-results")
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

    results = run_or_exit(run())
    if as_json:
        for result in results:
            json_line(result)
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
        out.print(titled_table("Business results", ["code", "name", "level"], rows))


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


@click.group("external-results")
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
        show_items(
            items,
            as_json,
            "External results",
            ["defId", "display result", "result code"],
            lambda r: [r.def_id, r.display_result, r.result_code],
        )

    run_or_exit(run())


@external_results.command("show")
@click.argument("def_id")
@json_option
@click.pass_obj
def external_show(settings: Settings, def_id: str, as_json: bool) -> None:
    """Show the external result DEF_ID with its OBS codes."""

    async def run() -> None:
        async with settings.client() as client:
            result = await client.external_results.get(def_id)
        show_items(
            [result],
            as_json,
            "External result",
            ["defId", "display result", "result code", "OBS codes"],
            lambda r: [r.def_id, r.display_result, r.result_code, ",".join(r.obs_codes)],
        )

    run_or_exit(run())


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
        json_line(created) if as_json else out.print(f"created external result {created.def_id}")

    run_or_exit(run())


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

    run_or_exit(run())


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


@click.command("call-result")
@click.argument("call_id")
@json_option
@click.pass_obj
def call_result(settings: Settings, call_id: str, as_json: bool) -> None:
    """Show the result of one call."""

    async def run() -> None:
        async with settings.client() as client:
            result = await client.call_results.get(call_id)
        show_items([result], as_json, "Call result", CALL_COLUMNS, _call_row)

    run_or_exit(run())


@click.command("call-results")
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
        show_items(results, as_json, f"Call results of campaign {campaign_id}", CALL_COLUMNS, _call_row)

    run_or_exit(run())
