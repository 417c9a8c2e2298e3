"""pytest fixtures for the fake server; needs pytest-asyncio.

Enable with ``pytest_plugins = ["isales_async.testing.pytest_plugin"]`` in ``conftest.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import pytest_asyncio

from .. import ISalesClient
from ._clock import FakeClock
from ._server import DEFAULT_AK, DEFAULT_SK, FakeISales


@pytest_asyncio.fixture
async def isales_server() -> AsyncIterator[FakeISales]:
    """A fresh fake server on a free loopback port."""
    async with FakeISales() as server:
        yield server


@pytest_asyncio.fixture
async def isales_client(isales_server: FakeISales) -> AsyncIterator[ISalesClient]:
    """A client of ``isales_server`` (VDN 1) on a :class:`FakeClock`, so retries wait no real time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loopback fake speaks plain http
        client = ISalesClient(isales_server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, clock=FakeClock())
    async with client:
        yield client
