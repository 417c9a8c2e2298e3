"""The curated public surface: everything in ``__all__`` exists and nothing private leaks."""

from __future__ import annotations

import re

import isales_async
import isales_async.receivers
import isales_async.testing


def test_all_names_exist_and_are_public() -> None:
    for module in (isales_async, isales_async.receivers, isales_async.testing):
        for name in module.__all__:
            assert hasattr(module, name), name
            assert not name.startswith("_")


def test_every_error_derives_from_the_root() -> None:
    errors = [getattr(isales_async, n) for n in isales_async.__all__ if n.endswith("Error")]
    assert len(errors) >= 15
    assert all(issubclass(e, isales_async.ISalesError) for e in errors)


def test_the_error_tree_is_drawn_in_its_docstring() -> None:
    from isales_async import _errors

    for name in _errors.__all__:
        assert name in (_errors.__doc__ or ""), name


def drawn_parents(tree: str) -> dict[str, str]:
    """Each error drawn in the box-drawing tree of ``_errors``' docstring, with the error drawn above it."""
    parents: dict[str, str] = {}
    path: list[str] = []
    for line in tree.splitlines():
        found = re.match(r"^\s*((?:[│ ]   )*)[├└]── (\w+)", line)
        if found is not None:
            depth = len(found.group(1)) // 4
            del path[depth + 1 :]
            parents[found.group(2)] = path[depth]
            path.append(found.group(2))
        elif line.strip() == "ISalesError":
            path = ["ISalesError"]
    return parents


def test_every_public_error_is_drawn_under_its_base() -> None:
    from isales_async import _errors

    parents = drawn_parents(_errors.__doc__ or "")
    public = [getattr(isales_async, n) for n in isales_async.__all__ if n.endswith("Error") and n != "ISalesError"]
    actual = {
        cls.__name__: next(b for b in cls.__bases__ if issubclass(b, isales_async.ISalesError)).__name__
        for cls in public
    }
    assert parents == actual
    assert parents["PushFormatError"] == "ISalesError" and parents["UnexpectedError"] == "ISalesError"
