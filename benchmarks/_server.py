"""The fake server in its own process, so client and server do not share a core."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _serve(ready: Any, options: dict[str, Any]) -> None:
    from isales_async.testing import FakeISales

    async def main() -> None:
        server = FakeISales(**options)
        ready.send(await server.start())
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def server_process(**options: Any) -> Iterator[str]:
    """Run a :class:`FakeISales` with ``options`` in a child process; yields its base URL."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, options), daemon=True)
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the benchmark server did not start")
        yield parent.recv()
    finally:
        process.terminate()
        process.join(10)
