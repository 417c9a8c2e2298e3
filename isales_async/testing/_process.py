"""The fake server in a child process: for benchmarks and soak tests, where client and
server must not share a core, and for running it beside code under test."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from ._server import STATE_PATH

__all__ = ["fake_server_process", "fetch_state"]


def _serve(ready: Any, options: dict[str, Any]) -> None:
    from ._server import FakeISales

    async def main() -> None:
        server = FakeISales(**options)
        ready.send(await server.start())
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def fake_server_process(**options: Any) -> Iterator[str]:
    """Run ``FakeISales(**options)`` in a child process; yields its base URL."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, options), daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the fake server process did not start")
        yield parent.recv()
    finally:
        process.terminate()
        process.join(10)


def fetch_state(base_url: str) -> dict[str, Any]:
    """The server's evidence (:meth:`FakeISales.state`), fetched over its unsigned test endpoint."""
    with urllib.request.urlopen(base_url + STATE_PATH, timeout=10) as response:
        return orjson.loads(response.read())  # type: ignore[no-any-return]
