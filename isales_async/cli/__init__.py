"""The ``isales`` command line (``pip install "isales-async[cli]"``): the ``cli`` group and ``main``."""

from __future__ import annotations

from ._writeback import cli, main

__all__ = ["cli", "main"]
