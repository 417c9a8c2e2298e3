"""What the fake server answers to one request, before any socket carries it.

The fake's request handling (:meth:`FakeISales.dispatch`) returns a :class:`Reply`; the
aiohttp routes write it to a socket, the memory transport hands it to the client in
process. Faults that only a connection can show (a reset, a truncated body) are an
:class:`Ending`, which each side renders its own way.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType

import attrs

__all__ = ["Ending", "Reply", "brotli_module"]


class Ending(enum.Enum):
    """How the connection ends after the reply."""

    COMPLETE = "complete"  # the whole reply is sent
    DROP = "drop"  # nothing is sent: the connection is dropped
    TRUNCATE = "truncate"  # half the body is sent, then the connection is dropped


@attrs.frozen
class Reply:
    """One answer: status, headers and the body as it goes on the wire, in ``pieces``.

    ``encoding`` names the ``Content-Encoding`` of a compressed body (``None`` when plain),
    and ``chunked`` sends it without a ``Content-Length``.
    """

    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    pieces: Sequence[bytes] = ()
    encoding: str | None = None
    chunked: bool = False
    ending: Ending = Ending.COMPLETE

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


def brotli_module() -> ModuleType:
    """The installed brotli implementation (``brotli`` or ``brotlicffi``), for ``br`` bodies."""
    for name in ("brotli", "brotlicffi"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ValueError("encoding 'br' needs the brotli or brotlicffi package")
