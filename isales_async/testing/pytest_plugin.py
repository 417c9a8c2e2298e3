"""pytest fixtures for the fake server: ``isales_server`` and ``isales_client``.

pytest loads this plugin by itself once isales-async is installed (the ``pytest11``
entry point ``isales_async``; ``-p no:isales_async`` turns it off), so no
``pytest_plugins`` line is needed. The fixtures are pytest-asyncio fixtures and work in
its ``strict`` mode (the default: mark the tests ``@pytest.mark.asyncio``) and in
``auto`` mode. Without pytest-asyncio the fixtures fail with a message saying so, rather
than this plugin breaking every pytest run in the environment.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import NoReturn

import pytest

from .. import ISalesClient
from ._clock import FakeClock
from ._server import DEFAULT_AK, DEFAULT_SK, FakeISales

_NEEDS_PYTEST_ASYNCIO = "the isales_server and isales_client fixtures need pytest-asyncio: pip install pytest-asyncio"

try:
    import pytest_asyncio
except ImportError:

    @pytest.fixture(name="isales_server")
    def _isales_server_unavailable() -> NoReturn:
        pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)

    @pytest.fixture(name="isales_client")
    def _isales_client_unavailable() -> NoReturn:
        pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)

else:

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
