"""The curated public surface: everything in ``__all__`` exists and nothing private leaks."""

from __future__ import annotations

import isales_async
import isales_async.testing


def test_all_names_exist_and_are_public() -> None:
    for module in (isales_async, isales_async.testing):
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
