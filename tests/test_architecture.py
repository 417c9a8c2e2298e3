"""The package's dependencies point one way: no import cycle, and a pure core without aiohttp.

Both read the source with :mod:`ast`, so every import counts: inside functions, and
under ``TYPE_CHECKING`` too (a cycle there is still a cycle a reader must untangle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "isales_async"

#: The modules that decide without doing I/O; none may import aiohttp (or anything that does).
PURE_CORE = (
    "isales_async._signing",
    "isales_async._envelope",
    "isales_async._endpoints",
    "isales_async._validation",
    "isales_async._retry",
    "isales_async._paging",
    "isales_async.batch._rerun",
    "isales_async.batch._adaptive",
    "isales_async.batch._writeback",
    "isales_async.batch._definitions",
    "isales_async._transport",
    "isales_async._shared_limits",
)
#: Not pure (they wait and cancel), but transport-agnostic: aiohttp stays behind the seam.
TRANSPORT_AGNOSTIC = ("isales_async._session", "isales_async._limits", "isales_async._redis_limits")


def _module_names() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its ``__init__``)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def module_names() -> dict[str, Path]:
    return MODULES


def imported(name: str, path: Path) -> set[str]:
    """The absolute names ``name`` imports: ``from x import y`` is ``x.y`` when that is a
    module of the package (``from .. import _batch``), else ``x``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)
    return found


def internal_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name resolved to the module that holds it)."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target in imported(name, path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated at the end), or ``None``."""
    done: set[str] = set()
    for start in sorted(graph):
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def test_find_cycle_finds_one_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_imported_resolves_relative_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..x import Y\nfrom . import z\n")
    assert imported("pkg.sub.mod", source) == {"typing", "pkg.x", "pkg.sub"}
    package_module = PACKAGE / "resources" / "business_results.py"
    assert "isales_async.batch._engine" in imported("isales_async.resources.business_results", package_module)


def test_the_package_has_no_import_cycle() -> None:
    assert find_cycle(internal_graph()) is None


def reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


@pytest.mark.parametrize("module", PURE_CORE + TRANSPORT_AGNOSTIC)
def test_the_pure_core_never_imports_aiohttp(module: str) -> None:
    graph = internal_graph()
    modules = module_names()
    assert module in modules
    for name in reachable(module, graph):
        third_party = {target.split(".")[0] for target in imported(name, modules[name])}
        assert "aiohttp" not in third_party, f"{module} reaches aiohttp through {name}"


def test_redis_is_imported_by_the_redis_backends_alone() -> None:
    # Everything else, the session, its admission and the receiver included, works without the extra.
    modules = module_names()
    importers = {name for name, path in modules.items() if "redis" in {t.split(".")[0] for t in imported(name, path)}}
    assert importers == {"isales_async._redis_limits", "isales_async.push._dedupe_redis"}


# -- one spelling per fact ------------------------------------------------------------------


def test_the_default_route_limits_cannot_be_changed_in_place() -> None:
    from isales_async import DEFAULT_ROUTE_LIMITS, RouteLimit

    with pytest.raises(TypeError):
        DEFAULT_ROUTE_LIMITS["callresult"] = RouteLimit(concurrency=1, interval=1.0)  # type: ignore[index]
    assert dict(DEFAULT_ROUTE_LIMITS) == {"callresult": RouteLimit(concurrency=10, interval=1.0)}


def test_the_writeback_fields_are_spelled_once() -> None:
    from isales_async import Writeback
    from isales_async.batch._writeback import WRITEBACK_FIELDS
    from isales_async.cli import _files

    assert _files.WRITEBACK_COLUMNS is WRITEBACK_FIELDS
    record = Writeback(1, "B01", sub_status="B01-1", busi_result_desc="done", work_no="w7")
    assert tuple(record.to_json()) == WRITEBACK_FIELDS
    assert Writeback.from_json(record.to_json()) == record
