"""The fake server on its own event loop in a thread, for synchronous tests of the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from isales_async.testing import FakeISales


@contextmanager
def server_in_thread(**options: Any) -> Iterator[FakeISales]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, FakeISales] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            holder["server"] = FakeISales(**options)
            await holder["server"].start()
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake server did not start")
    try:
        yield holder["server"]
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
