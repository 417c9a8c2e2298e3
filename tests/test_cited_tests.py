"""Every test the README (and the docs) cite as the proof of a guarantee exists.

A guarantee names its test; a renamed or deleted test would leave the guarantee unproven
while the text still claims it.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CITING = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# `tests/test_x.py::test_name`, or `::test_name` for the file cited last before it.
CITATION = re.compile(r"`(tests/[\w/]+\.py)?::(test_\w+)")


def citations(text: str) -> list[tuple[str, str]]:
    found, current = [], None
    for match in CITATION.finditer(text):
        current = match.group(1) or current
        if current is not None:
            found.append((current, match.group(2)))
    return found


@cache
def defined_tests(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def test_citations_are_found_with_and_without_their_file() -> None:
    text = "(`tests/test_a.py::test_one`, `::test_two`) and `tests/test_b.py::test_three`"
    assert citations(text) == [
        ("tests/test_a.py", "test_one"),
        ("tests/test_a.py", "test_two"),
        ("tests/test_b.py", "test_three"),
    ]


@pytest.mark.parametrize("document", [p for p in CITING if p.exists()], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_test_exists(document: Path) -> None:
    cited = citations(document.read_text(encoding="utf-8"))
    missing = [
        f"{file}::{name}"
        for file, name in cited
        if not (ROOT / file).is_file() or name not in defined_tests(ROOT / file)
    ]
    assert missing == []
    if document.name == "README.md":
        assert len(cited) > 50  # the Guarantees section cites its tests
