"""Testing support: the embedded fake CC-iSales server and a fake clock.

Use them in your own tests::

    async with FakeISales() as server:
        async with ISalesClient(server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1) as client:
            ...

or without a socket at all, through the memory transport (as httpx's ``MockTransport``)::

    server = FakeISales()
    async with ISalesClient("https://isales.test", ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1,
                            transport=server.transport()) as client:
        ...

or, with pytest-asyncio installed, the ``isales_server`` and ``isales_client`` fixtures,
which pytest loads by itself (the ``pytest11`` entry point of
:mod:`isales_async.testing.pytest_plugin`; no ``pytest_plugins`` line is needed).
"""

from __future__ import annotations

from ._clock import FakeClock
from ._faults import Capacity, Chaos, Fault, FaultKind, PagingQuirk
from ._memory import MemoryTransport
from ._process import fake_server_process, fetch_state
from ._server import DEFAULT_AK, DEFAULT_SK, FakeISales, RecordedRequest
from ._tenant import AppliedWrite

__all__ = [
    "DEFAULT_AK",
    "DEFAULT_SK",
    "AppliedWrite",
    "Capacity",
    "Chaos",
    "FakeClock",
    "FakeISales",
    "Fault",
    "FaultKind",
    "MemoryTransport",
    "PagingQuirk",
    "RecordedRequest",
    "fake_server_process",
    "fetch_state",
]
