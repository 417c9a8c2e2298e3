"""Response bodies are bounded after decoding: a decompression bomb stops at the cap, costs
memory of the order of the cap (not of the bomb), and its connection is dropped."""

from __future__ import annotations

import gzip
import importlib.util
import tracemalloc
import warnings
import zlib
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest
import pytest_asyncio

from isales_async import ISalesClient, ResponseTooLargeError
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales, Fault
from isales_async.testing._faults import compressed_body

from .conftest import MakeClient

pytestmark = pytest.mark.sockets  # bytes on the wire: compression, kept connections, dropped ones

HAS_BROTLI = any(importlib.util.find_spec(name) for name in ("brotli", "brotlicffi"))
ENCODINGS = ["gzip", "deflate", pytest.param("br", marks=pytest.mark.skipif(not HAS_BROTLI, reason="no brotli"))]
FRAMINGS = pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
GIB = 1 << 30
CAP = 8 << 20


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("padding", [0, 5, 1 << 20, (3 << 20) + 7])
def test_the_fakes_compressed_body_decodes_to_the_body_and_its_padding(encoding: str, padding: int) -> None:
    body = b'{"resultCode": "0200000"}'
    data = b"".join(compressed_body(body, padding, encoding))
    decoded = gzip.decompress(data) if encoding == "gzip" else zlib.decompress(data)
    assert decoded == body + b" " * padding


def test_a_gib_of_padding_is_about_a_mib_on_the_wire() -> None:
    pieces = compressed_body(b"{}", GIB, "gzip")
    assert 1 << 20 <= sum(len(p) for p in pieces) <= 2 << 20


@pytest.mark.parametrize("encoding", ENCODINGS)
@FRAMINGS
async def test_a_compressed_body_under_the_cap_is_decoded(
    make_client: MakeClient, server: FakeISales, encoding: str, chunked: bool
) -> None:
    server.inject(Fault.compressed(encoding=encoding, padding=100_000, chunked=chunked))
    async with make_client(max_response_bytes=200_000) as client:
        page = await client.obs_result_codes.page(page_size=3)
    assert [c.obs_code for c in page.items] == ["00600", "00601", "00602"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@FRAMINGS
async def test_a_body_decoding_past_the_cap_is_refused(
    make_client: MakeClient, server: FakeISales, encoding: str, chunked: bool
) -> None:
    server.inject(Fault.compressed(encoding=encoding, padding=300_000, chunked=chunked))
    async with make_client(max_response_bytes=200_000) as client:
        with pytest.raises(ResponseTooLargeError, match="200000-byte cap"):
            await client.obs_result_codes.page(page_size=3)
    assert len(server.requests) == 1  # a format error: not retried


class Connections(SimpleNamespace):
    created: int = 0
    reused: int = 0


@pytest_asyncio.fixture
async def counted(server: FakeISales) -> AsyncIterator[tuple[ISalesClient, Connections]]:
    """A client whose aiohttp session counts new and reused connections."""
    seen = Connections()

    async def created(*_: object) -> None:
        seen.created += 1

    async def reused(*_: object) -> None:
        seen.reused += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = ISalesClient(
                server.base_url,
                ak=DEFAULT_AK,
                sk=DEFAULT_SK,
                vdn_id=1,
                clock=FakeClock(),
                session=session,
                max_response_bytes=CAP,
            )
        async with client:
            yield client, seen


async def test_a_kept_connection_is_reused(counted: tuple[ISalesClient, Connections]) -> None:
    client, seen = counted
    for _ in range(3):
        await client.obs_result_codes.page(page_size=1)
    assert (seen.created, seen.reused) == (1, 2)


@pytest.mark.parametrize("encoding", ENCODINGS)
@FRAMINGS
async def test_a_decompression_bomb_stops_at_the_cap_and_its_connection_is_dropped(
    counted: tuple[ISalesClient, Connections], server: FakeISales, encoding: str, chunked: bool
) -> None:
    client, seen = counted
    await client.obs_result_codes.page(page_size=1)
    server.inject(Fault.compressed(encoding=encoding, padding=GIB, chunked=chunked))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError):
            await client.obs_result_codes.page(page_size=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What was read up to the cap was held; nothing like the GiB the bomb decodes to.
    assert CAP // 2 <= peak <= 2 * CAP
    await client.obs_result_codes.page(page_size=1)
    # The bomb went over the first, pooled connection; the read after it needed a new one.
    assert (seen.created, seen.reused) == (2, 1)
