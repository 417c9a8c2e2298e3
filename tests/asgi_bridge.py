"""A minimal ASGI server inside aiohttp, so ASGI apps are reached over real HTTP in the tests.

It does what an ASGI server does for the parts the receivers use: one ``http`` scope per
request (the body arrives in two messages, to exercise ``more_body``), the peer address
as ``client``, and the ``lifespan`` protocol: startup when the aiohttp app starts,
shutdown in its ``on_shutdown``, while the open requests still hold their connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class _Lifespan:
    """Runs the app's lifespan protocol in a task, as uvicorn does."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self, _: web.Application) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._task = asyncio.ensure_future(self.app(scope, self._to_app.get, self._from_app.put))
        await self._exchange("lifespan.startup")

    async def shutdown(self, _: web.Application) -> None:
        await self._exchange("lifespan.shutdown")
        assert self._task is not None
        await self._task

    async def _exchange(self, event: str) -> None:
        await self._to_app.put({"type": event})
        answer = await self._from_app.get()
        assert answer["type"] == f"{event}.complete", answer


def asgi_under_aiohttp(app: AsgiApp) -> web.Application:
    """An aiohttp application that serves ``app`` at every path, lifespan included."""
    lifespan = _Lifespan(app)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        host, port = request.transport.get_extra_info("sockname")[:2] if request.transport else ("", 0)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.raw_path.partition("?")[0].encode(),
            "root_path": "",
            "query_string": request.query_string.encode(),
            "headers": [(k.lower(), v) for k, v in request.raw_headers],
            "client": (request.remote, 0),
            "server": (host, port),
            "state": dict(lifespan.state),
        }
        messages: list[Message] = [
            {"type": "http.request", "body": body[:7], "more_body": True},
            {"type": "http.request", "body": body[7:], "more_body": False},
        ]
        answered = asyncio.Event()
        status, chunks = 500, []

        async def receive() -> Message:
            if messages:
                return messages.pop(0)
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        await app(scope, receive, send)
        return web.Response(status=status, body=b"".join(chunks))

    web_app = web.Application()
    web_app.router.add_route("*", "/{tail:.*}", handle)
    web_app.on_startup.append(lifespan.startup)
    web_app.on_shutdown.append(lifespan.shutdown)
    return web_app
