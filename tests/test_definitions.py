"""Issue 19: writebacks checked against the tenant's own business-result definitions.

The check itself is pure and tested synchronously; the fetch, its cache and the batch
are tested end to end against the fake server, whose writeback refuses what the
definitions lack just as the real server does.
"""

from __future__ import annotations

from typing import Any

import pytest

from isales_async import InvalidParameterError
from isales_async.testing import FakeISales

from .conftest import MakeClient

WB = "callBusiResult"
DEFS = "queryBusinessResults"

# A small tenant: two parents with sub-statuses, one without any.
TENANT: list[dict[str, Any]] = [
    {
        "code": "B01",
        "name": "Agreed",
        "defLevel": "1",
        "children": [
            {"code": "B01-1", "name": "Renewed", "defLevel": "2"},
            {"code": "B01-2", "name": "Upgraded", "defLevel": "2"},
        ],
    },
    {
        "code": "B02",
        "name": "Refused",
        "defLevel": "1",
        "children": [{"code": "B02-1", "name": "Too expensive", "defLevel": "2"}],
    },
    {"code": "B12", "name": "Call back later", "defLevel": "1", "children": []},
]


# -- the fake server refuses what the definitions lack ------------------------------------------------------


async def test_the_fake_refuses_an_undefined_code_and_takes_its_definitions_per_test(make_client: MakeClient) -> None:
    server = FakeISales(business_results=TENANT)
    url = await server.start()
    try:
        async with make_client(base_url=url) as client:
            assert [r.code async for r in client.business_results.iter()] == ["B01", "B02", "B12"]
            for busi_result, sub_status, code in [
                ("B13", None, "0200001"),  # undefined
                ("B01-1", None, "0200001"),  # a sub-status is no level-1 code
                ("B01", "B02-1", "0200034"),  # another parent's sub-status
                ("B12", "B12-1", "0200034"),  # a code without sub-statuses given one
            ]:
                with pytest.raises(InvalidParameterError) as info:
                    await client.business_results.write_back(7, busi_result, sub_status=sub_status)
                assert info.value.code == code
            await client.business_results.write_back(7, "B12")
            server.business_results = [*TENANT, {"code": "B13", "name": "new", "defLevel": "1"}]  # no children key
            await client.business_results.write_back(8, "B13")
            with pytest.raises(InvalidParameterError, match="0200034"):
                await client.business_results.write_back(9, "B13", sub_status="B13-1")
    finally:
        await server.close()
    assert server.applied_counts() == {"7": 1, "8": 1}
