"""Receiving the call results CC-iSales pushes: a room of private modules.

``_parsing`` reads a pushed body (pure), ``_receiver`` holds :class:`~isales_async.PushReceiver`
(queue, workers, deadlines, the answer to give) and ``_adapters`` fits it to aiohttp and ASGI.
Import the public names from :mod:`isales_async` and :mod:`isales_async.receivers`.
"""
