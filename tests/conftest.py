from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import hypothesis
import pytest
import pytest_asyncio

from isales_async import ISalesClient
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales

from .redis_server import RedisServer, running_redis

MakeClient = Callable[..., ISalesClient]

# No timing thresholds in tests: Hypothesis' per-example deadline (200 ms) failed a
# property test on a busy machine, though nothing was wrong but the machine's load.
hypothesis.settings.register_profile("isales-async", deadline=None)
hypothesis.settings.load_profile("isales-async")


def ascii_id(text: str) -> str:
    """``text`` as a test id of printable ASCII without a backslash (``\\ud800`` becomes
    ``U+d800``), which tools that select tests by id, such as mutmut, find again."""
    escaped = text.encode("ascii", "backslashreplace").decode().encode("unicode_escape").decode()
    return re.sub(r"\\\\?[xuU]", "U+", escaped).replace("\\", "^")


#: The host a client of the memory transport signs for (it names no socket).
MEMORY_BASE_URL = "https://isales.test"
#: Options only the aiohttp transport takes: a client given one talks over a socket.
SOCKET_OPTIONS = frozenset({"base_url", "session", "ssl", "ca_file", "insecure", "trust_env"})


def wants_sockets(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("sockets") is not None


@pytest_asyncio.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[FakeISales]:
    """A fresh fake; listening on loopback only for a test marked ``sockets`` (the others
    reach it through its memory transport)."""
    fake = FakeISales()
    if wants_sockets(request):
        await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest_asyncio.fixture
async def make_client(server: FakeISales, request: pytest.FixtureRequest) -> AsyncIterator[MakeClient]:
    """Build clients of ``server`` (FakeClock by default); all are closed afterwards.

    They use the memory transport unless the test is marked ``sockets`` or passes an
    option of the aiohttp transport (``base_url``, ``session``, ``ssl``, ...).
    """
    clients: list[ISalesClient] = []
    over_sockets = wants_sockets(request)

    def make(**overrides: Any) -> ISalesClient:
        options: dict[str, Any] = {"ak": DEFAULT_AK, "sk": DEFAULT_SK, "vdn_id": 1, "clock": FakeClock()}
        options.update(overrides)
        if over_sockets or SOCKET_OPTIONS & set(overrides) or "transport" in overrides:
            base_url = options.pop("base_url", server.base_url)
        else:
            base_url = MEMORY_BASE_URL
            options["transport"] = server.transport()
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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` for the session (see :mod:`tests.redis_server`).

    A machine without one fails these tests rather than skipping them: what processes
    share through Redis is a guarantee, and a skipped test proves nothing.
    """
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis server, emptied for this test."""
    redis_server.flush()
    return redis_server.url
