"""Receiving the call results CC-iSales pushes: a room of private modules.

``_parsing`` reads a pushed body (pure), ``_receiver`` holds :class:`~isales_async.PushReceiver`
(claims, queue, workers, deadlines, the answer to give), ``_dedupe`` the protocol of the stores
it claims call IDs in and the in-memory one (``_dedupe_sqlite`` and ``_dedupe_redis`` the shared
ones), and ``_adapters`` fits it to aiohttp and ASGI.
Import the public names from :mod:`isales_async` and :mod:`isales_async.receivers`.
"""
