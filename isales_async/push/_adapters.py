"""The aiohttp and ASGI adapters of :class:`~isales_async.PushReceiver`, published as
:mod:`isales_async.receivers`, whose docstring says how to mount them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from ._receiver import PushReceiver

__all__ = ["AsgiPushApp", "aiohttp_app", "aiohttp_handler"]

MAX_PUSH_BYTES = 4 * 1024 * 1024


def aiohttp_handler(receiver: PushReceiver) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for ``POST`` pushes."""

    async def handle(request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405, text="POST only")
        answer = await receiver.handle(await request.read(), token=request.query.get("token"), client_ip=request.remote)
        return web.Response(status=answer.status, text=answer.message)

    return handle


def aiohttp_app(receiver: PushReceiver, path: str = "/") -> web.Application:
    """A sub-application serving the receiver at ``path``; the app's shutdown closes the receiver.

    ``on_shutdown`` runs before aiohttp drops the open connections, so the pushes still
    queued are processed or answered 503 (see :meth:`PushReceiver.aclose`).
    """
    app = web.Application(client_max_size=MAX_PUSH_BYTES)
    app.router.add_route("*", path, aiohttp_handler(receiver))

    async def stop(_: web.Application) -> None:
        await receiver.aclose()

    app.on_shutdown.append(stop)
    return app


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AsgiPushApp:
    """An ASGI application for ``POST`` pushes; mount it under any ASGI framework.

    Served as the root application it handles the lifespan protocol itself. Mounted
    (Starlette's ``Mount``, FastAPI's ``app.mount``) it never receives lifespan events,
    so hand :meth:`lifespan` to the parent app, or enter it from your own lifespan, or
    call :meth:`aclose` from your shutdown code.
    """

    def __init__(self, receiver: PushReceiver, *, max_body: int = MAX_PUSH_BYTES) -> None:
        self.receiver = receiver
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await self._answer(send, 405, "POST only")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await self._answer(send, 413, "push too large")
                return
            if not message.get("more_body", False):
                break
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        client = scope.get("client")
        answer = await self.receiver.handle(bytes(body), token=token, client_ip=client[0] if client else None)
        await self._answer(send, answer.status, answer.message)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A lifespan for the parent app: ``Starlette(..., lifespan=push_app.lifespan)``.

        Nothing needs starting; on exit the receiver is closed (:meth:`PushReceiver.aclose`).
        """
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the receiver: drain what is queued, answer the rest 503, refuse new pushes."""
        await self.receiver.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.receiver.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _answer(send: Send, status: int, text: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": text.encode()})
