"""The documentation site: its examples run, its reference covers the public API, it builds.

The guides' fenced ``python`` blocks are run from the Markdown itself, so they cannot rot
and these tests need no mkdocs:

- A block titled ``title="NAME"`` is a file: every titled block of a page is written to a
  new directory under its name, and pytest runs the ``test_*.py`` ones there, as a reader
  who copied them would.
- Any other block is a program: it runs in a new namespace as ``__main__``, in an empty
  working directory, with ``ISALES_BASE_URL``, ``ISALES_AK``, ``ISALES_SK`` and
  ``ISALES_VDN_ID`` naming a fresh fake server of its own (the variables the ``isales``
  command reads too), and a ``PUSH_TOKEN`` for push receivers.
- A block preceded by ``<!-- not run: KEY -->`` is not run; ``NOT_RUN[KEY]`` says why,
  and every key is used by exactly one block.

Building the site (``mkdocs build --strict``) is tested only where mkdocs is installed
(the ``docs`` extra; ``nox -s docs`` builds it too).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
import pytest

import isales_async
import isales_async._errors
import isales_async.otel
import isales_async.receivers
import isales_async.testing
from isales_async import cli
from isales_async.testing import DEFAULT_AK, DEFAULT_SK

from .server_thread import server_in_thread
from .test_packaging import summary

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GUIDES = sorted((DOCS / "guides").glob("*.md"))

#: The blocks that are not run, by the key of their ``<!-- not run: KEY -->`` marker, and why.
NOT_RUN: dict[str, str] = {
    "fastapi": "FastAPI is not a test dependency; the Starlette block before it (FastAPI is built on"
    " Starlette) runs the same AsgiPushApp and lifespan, and tests/test_push.py serves it over HTTP",
    "redis": "it needs a Redis server, which the guide examples' fake server does not bring;"
    " tests/test_shared_limits_processes.py runs the same client in four worker processes on a real one",
    "redis-dedupe": "it needs a Redis server; tests/test_dedupe.py and tests/test_dedupe_processes.py run the"
    " Redis store against a real one, the latter in four receiver processes",
}

_BLOCK = re.compile(
    r"^(?:<!-- not run: (?P<not_run>[\w-]+) -->\n)?```python(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.M | re.S
)
_TITLE = re.compile(r'title="([^"]+)"')
_ANY_FILE_BLOCK = re.compile(r'^```\w+ title="(?P<name>[^"]+)"\n(?P<body>.*?)^```$', re.M | re.S)


@attrs.frozen
class Block:
    """One fenced python block of a guide."""

    page: Path
    line: int
    body: str
    title: str | None
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page.stem}:{self.line}"


def python_blocks(page: Path) -> Iterator[Block]:
    text = page.read_text()
    for match in _BLOCK.finditer(text):
        title = _TITLE.search(match["info"])
        line = text.count("\n", 0, match.start("body")) + 1
        yield Block(page, line, match["body"], title[1] if title else None, match["not_run"])


BLOCKS = [block for page in GUIDES for block in python_blocks(page)]
PROGRAMS = [b for b in BLOCKS if b.title is None and b.not_run is None]
FILE_PAGES = sorted({b.page for b in BLOCKS if b.title is not None and b.not_run is None})


# -- the examples run -----------------------------------------------------------------------


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.id for b in PROGRAMS])
def test_a_guide_program_runs_against_the_fake_server(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with server_in_thread() as server:
        monkeypatch.setenv("ISALES_BASE_URL", server.base_url)
        monkeypatch.setenv("ISALES_AK", DEFAULT_AK)
        monkeypatch.setenv("ISALES_SK", DEFAULT_SK)
        monkeypatch.setenv("ISALES_VDN_ID", "1")
        monkeypatch.setenv("PUSH_TOKEN", "a-token-for-the-push-receiver")
        exec(compile(block.body, f"{block.page.name}:{block.line}", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("page", FILE_PAGES, ids=[p.stem for p in FILE_PAGES])
def test_a_guide_test_file_passes_as_written(page: Path, tmp_path: Path) -> None:
    files = {m["name"]: m["body"] for m in _ANY_FILE_BLOCK.finditer(page.read_text())}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    tests = sorted(name for name in files if re.fullmatch(r"test_\w+\.py", name))
    assert tests, f"{page.name} has titled blocks but no test file"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", *tests],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.fullmatch(r"\d+ passed", summary(run)), run.stdout


def test_every_block_not_run_says_why_and_every_reason_has_its_block() -> None:
    markers = [b.not_run for b in BLOCKS if b.not_run is not None]
    assert sorted(markers) == sorted(NOT_RUN), "each <!-- not run: KEY --> needs NOT_RUN[KEY], and each key a block"
    assert all(reason.strip() for reason in NOT_RUN.values())


def test_the_guides_have_examples_to_run() -> None:
    assert GUIDES, "no guides found"
    for page in GUIDES:
        assert "```python" in page.read_text() or page.stem in {"cli", "errors"}, f"{page.name} shows no Python"


# -- the command line guide names real commands and options ----------------------------------


def documented_command_lines() -> Iterator[list[str]]:
    """The ``isales ...`` lines of the shell blocks in the CLI guide, as argument lists."""
    text = (DOCS / "guides" / "cli.md").read_text()
    for block in re.findall(r"^```(?:sh|console)\n(.*?)^```$", text, re.M | re.S):
        for line in block.splitlines():
            line = line.removeprefix("$ ").split("  #", 1)[0].strip()
            if line.startswith("isales "):
                yield shlex.split(line)[1:]


def _options(command: click.Command) -> dict[str, bool]:
    """The options of ``command``, each with whether it takes a value."""
    return {
        opt: isinstance(param, click.Option) and not param.is_flag and not param.count
        for param in command.params
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("-")
    }


def option_problems(args: list[str]) -> list[str]:
    """The options in ``args`` that the ``isales`` command named by its words does not take.

    Words name subcommands while there is a group to descend into; any other word is an
    argument (a file, an ID) or an option's value. A group's options stay valid after its
    subcommands, as click takes them.
    """
    command: click.Command = cli.cli
    known = {**_options(command), "--help": False}
    problems = []
    words = iter(args)
    for arg in words:
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            if name not in known:
                problems.append(f"isales {' '.join(args)}: no option {name}")
            elif known[name] and "=" not in arg:
                next(words, None)
        elif isinstance(command, click.Group) and arg in command.commands:
            command = command.commands[arg]
            known |= _options(command)
        elif isinstance(command, click.Group):
            problems.append(f"isales {' '.join(args)}: no command {arg}")
            break
    return problems


def test_every_command_line_of_the_cli_guide_uses_real_commands_and_options() -> None:
    lines = list(documented_command_lines())
    assert len(lines) >= 10
    problems = [problem for args in lines for problem in option_problems(args)]
    assert problems == []


def test_the_command_line_check_finds_what_does_not_exist() -> None:
    assert option_problems(["writeback", "a.csv", "--journal", "j.sqlite", "--dry-run"]) == []
    assert option_problems(["--ca-file", "ca.pem", "-v", "journal", "show", "j.sqlite", "--json"]) == []
    assert option_problems(["writeback", "a.csv", "--retry-everything"]) == [
        "isales writeback a.csv --retry-everything: no option --retry-everything"
    ]
    assert option_problems(["journal", "repair", "j.sqlite"]) == ["isales journal repair j.sqlite: no command repair"]


def test_the_cli_guide_names_every_command() -> None:
    text = (DOCS / "guides" / "cli.md").read_text()
    commands = {name for name, command in cli.cli.commands.items() if not command.hidden}
    missing = sorted(name for name in commands if f"isales {name}" not in text)
    assert missing == []


# -- the errors guide draws the tree of _errors.py ---------------------------------------------


def test_the_errors_guide_draws_the_tree_of_the_errors_module() -> None:
    docstring = isales_async._errors.__doc__ or ""
    drawn = textwrap.dedent(docstring.split("::\n\n", 1)[1].split("\n\n", 1)[0])
    guide = (DOCS / "guides" / "errors.md").read_text()
    assert f"```text\n{drawn}\n```" in guide


# -- the reference and the navigation --------------------------------------------------------


def documented_names() -> set[str]:
    text = "\n".join(page.read_text() for page in (DOCS / "reference").glob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)$", text, re.M))


@pytest.mark.parametrize("module", [isales_async, isales_async.testing, isales_async.receivers, isales_async.otel])
def test_the_reference_documents_every_public_name(module: object) -> None:
    name = getattr(module, "__name__")  # noqa: B009  (a module, typed as object for the parametrisation)
    public = {f"{name}.{member}" for member in getattr(module, "__all__")}  # noqa: B009
    assert sorted(public - documented_names()) == []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    nav = config.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    in_nav = set(re.findall(r":\s+(\S+\.md)$", nav, re.M))
    pages = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert (sorted(pages - in_nav), sorted(in_nav - pages)) == ([], [])


# -- the docstring rewriting of the build, and the build -------------------------------------


def load_griffe_extension() -> object:
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_isales", DOCS / "griffe_isales.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_and_literal_introductions_become_markdown() -> None:
    markdown_of = getattr(load_griffe_extension(), "markdown_of")  # noqa: B009
    text = "Raises :class:`~isales_async.JournalError`, see :func:`.fatal_reason` and :meth:`Journal.entries`::\n\n    code\n"
    assert markdown_of(text) == "Raises `JournalError`, see `fatal_reason` and `Journal.entries`:\n\n    code\n"
    assert markdown_of("Use it:\n\n::\n\n    code\n") == "Use it:\n\n\n    code\n"


def test_the_site_builds_strict_with_signatures_and_no_sphinx_roles(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    reference = "\n".join(page.read_text() for page in (site / "reference").rglob("*.html"))
    assert ":class:" not in reference and ":meth:" not in reference
    options = (site / "reference" / "options" / "index.html").read_text()
    assert re.search(r"connect</span>.*?10\.0", options, re.S), "the attrs signature of Timeouts is missing"
    assert not list(site.rglob("*.py")), "build helpers must not be published"
