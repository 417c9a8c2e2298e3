"""Mount a :class:`~isales_async.PushReceiver` in the frameworks our users run.

- aiohttp: :func:`aiohttp_handler` (a route handler) or :func:`aiohttp_app` (a
  sub-application: ``app.add_subapp("/isales", aiohttp_app(receiver))``).
- ASGI (FastAPI, Starlette, ...): :class:`AsgiPushApp`
  (``app.mount("/isales/callback", push_app)``, with ``lifespan=push_app.lifespan``
  on the parent app: a mounted app never sees the lifespan events itself).

Both read the optional ``?token=`` from the URL and the peer address, and answer what
:meth:`PushReceiver.handle` decides. The receiver's workers start with the first push,
so nothing needs a startup event; shutting down (:meth:`PushReceiver.aclose`) drains
the queued pushes and answers the rest 503, so it should run while the server still
holds their connections: in aiohttp's ``on_shutdown``, in the ASGI app's lifespan.

Several workers (gunicorn or uvicorn workers, pods) share their memory of processed
call IDs through a :class:`DedupeStore` passed as ``PushReceiver(dedupe_store=...)``:
:class:`SqliteDedupeStore` for the processes of one host, :class:`RedisDedupeStore`
(``pip install "isales-async[redis]"``) for several hosts; :class:`MemoryDedupeStore`,
the default, serves one process.
"""

from __future__ import annotations

from .push._adapters import AsgiPushApp, aiohttp_app, aiohttp_handler
from .push._dedupe import Claim, DedupeStore, MemoryDedupeStore
from .push._dedupe_redis import RedisDedupeStore
from .push._dedupe_sqlite import SqliteDedupeStore

__all__ = [
    "AsgiPushApp",
    "Claim",
    "DedupeStore",
    "MemoryDedupeStore",
    "RedisDedupeStore",
    "SqliteDedupeStore",
    "aiohttp_app",
    "aiohttp_handler",
]
