from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from isales_async import ISalesClient
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales

MakeClient = Callable[..., ISalesClient]


def ascii_id(text: str) -> str:
    """``text`` as a test id of printable ASCII without a backslash (``\\ud800`` becomes
    ``U+d800``), which tools that select tests by id, such as mutmut, find again."""
    escaped = text.encode("ascii", "backslashreplace").decode().encode("unicode_escape").decode()
    return re.sub(r"\\\\?[xuU]", "U+", escaped).replace("\\", "^")


@pytest.fixture
def server(isales_server: FakeISales) -> FakeISales:
    return isales_server


@pytest_asyncio.fixture
async def make_client(server: FakeISales) -> AsyncIterator[MakeClient]:
    """Build opened clients of ``server`` (FakeClock by default); all are closed afterwards."""
    clients: list[ISalesClient] = []

    def make(**overrides: Any) -> ISalesClient:
        options: dict[str, Any] = {"ak": DEFAULT_AK, "sk": DEFAULT_SK, "vdn_id": 1, "clock": FakeClock()}
        options.update(overrides)
        base_url = options.pop("base_url", server.base_url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = ISalesClient(base_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest_asyncio.fixture
async def client(make_client: MakeClient) -> AsyncIterator[ISalesClient]:
    async with make_client() as c:
        yield c
