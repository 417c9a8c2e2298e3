"""A forwarding HTTP proxy on loopback for the tests, that counts what it forwarded.

It takes requests in absolute form (``GET http://host:port/path HTTP/1.1``), as a client
configured with a proxy sends them for a plain-http origin, and forwards each one
unchanged (method, path and query as encoded, headers, ``Host`` included, body bytes), so
a signed request still verifies at the origin.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiohttp
import attrs
import yarl
from aiohttp import web

# Hop-by-hop headers, and those aiohttp computes again for the forwarded request.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "content-length"}
)


@attrs.define
class ForwardProxy:
    """The proxy's URL, once started, and what it forwarded (absolute URLs, in order)."""

    url: str = ""
    forwarded: list[str] = attrs.field(factory=list)
    proxy_authorizations: list[str | None] = attrs.field(factory=list)


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[ForwardProxy]:
    """Run a forwarding proxy on 127.0.0.1 for the duration of the block."""
    proxy = ForwardProxy()
    async with aiohttp.ClientSession(auto_decompress=False) as upstream:

        async def forward(request: web.Request) -> web.StreamResponse:
            target = yarl.URL(request.raw_path, encoded=True)
            if not target.is_absolute():
                return web.Response(status=400, text="a proxy takes absolute URLs")
            proxy.forwarded.append(str(target))
            proxy.proxy_authorizations.append(request.headers.get("Proxy-Authorization"))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
            async with upstream.request(
                request.method, target, headers=headers, data=await request.read(), allow_redirects=False
            ) as answer:
                body = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
                return web.Response(status=answer.status, headers=kept, body=body)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        proxy.url = f"http://{host}:{port}"
        try:
            yield proxy
        finally:
            await runner.cleanup()


@contextmanager
def proxy_in_thread() -> Iterator[ForwardProxy]:
    """The forwarding proxy on its own event loop in a thread, for synchronous tests of the CLI."""
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[ForwardProxy] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with forward_proxy() as proxy:
            started.set_result(proxy)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield started.result(10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
