"""Output and exit codes of every command: the consoles, JSON Lines, tables, and a library
error as one line with exit status 2."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import attrs
import click
import orjson
from rich.console import Console
from rich.table import Table

from .. import DefinitionsUnavailableError, ISalesError, ValidationError

T = TypeVar("T")
out: Console = Console()
err: Console = Console(stderr=True)


def run_or_exit(coro: Awaitable[T], resume: str | None = None) -> T:
    """Run a command's coroutine; library errors become a clear message and exit status 2
    (``resume``: the command that runs it again, printed with the error)."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    except ISalesError as exc:
        exit_with(exc, resume)


def exit_with(exc: ISalesError, resume: str | None = None) -> NoReturn:
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


def json_line(obj: Any) -> None:
    """Print ``obj`` (an attrs model or plain data) as one JSON line on stdout."""
    data = attrs.asdict(obj) if attrs.has(type(obj)) else obj
    # Naive times are the server's local time: written as sent, without an offset.
    sys.stdout.write(orjson.dumps(data, default=dict).decode() + "\n")


def titled_table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table of ``rows`` under ``title``, each value shown as text (``None`` as nothing)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def show_items(
    items: list[Any], as_json: bool, title: str, columns: list[str], row: Callable[[Any], list[Any]]
) -> None:
    """Print ``items`` as JSON Lines, or as a table with their count in its title and ``row(item)`` per row."""
    if as_json:
        for item in items:
            json_line(item)
    else:
        out.print(titled_table(f"{title} ({len(items)})", columns, [row(i) for i in items]))


json_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines instead of a table"
)
max_items_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--max-items", type=int, default=None, help="stop after this many"
)
