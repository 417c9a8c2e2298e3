"""The fake server in a child process: for benchmarks and soak tests, where client and
server must not share a core, and for running it beside code under test."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import selectors
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from ._faults import Fault
from ._server import STATE_PATH

__all__ = ["fake_server_process", "fetch_state"]


def server_loop(precise_timers: bool) -> asyncio.AbstractEventLoop:
    """The event loop the child serves on: on ``select()`` for precise timers (its timeout is
    in microseconds; epoll's and poll's are whole milliseconds, rounded up)."""
    if precise_timers:
        return asyncio.SelectorEventLoop(selectors.SelectSelector())
    return asyncio.new_event_loop()


def _serve(ready: Any, options: dict[str, Any], faults: Sequence[Fault], precise_timers: bool) -> None:
    from ._server import FakeISales

    async def main() -> None:
        server = FakeISales(**options)
        server.inject(*faults)
        ready.send(await server.start())
        await asyncio.Event().wait()

    loop = server_loop(precise_timers)
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main())


@contextmanager
def fake_server_process(*, faults: Sequence[Fault] = (), precise_timers: bool = False, **options: Any) -> Iterator[str]:
    """Run ``FakeISales(**options)`` in a child process, ``faults`` injected before it
    listens; yields its base URL. Its evidence (:meth:`FakeISales.state`: the applied
    writes, the peak in flight per route, when each request arrived) is :func:`fetch_state`'s.

    ``precise_timers`` serves on a ``select()`` loop, so that a ``latency`` is what it says:
    the default loop's timers wake on a grid of whole milliseconds, which lengthens a 20 ms
    latency to 20-21 ms and wakes the answers to requests sent within the same millisecond
    together. For benchmarks of latency; ``select()`` takes descriptors below 1024 only.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, options, tuple(faults), precise_timers), daemon=True)
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
