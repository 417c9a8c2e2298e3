"""A base URL copied with the API path in it is not doubled: the client strips that path."""

from __future__ import annotations

import pytest

from isales_async.testing import FakeISales

from .conftest import MakeClient


@pytest.mark.parametrize(
    "suffix", ["/rest/isales/v1/openapi", "/rest/isales/v1/openapi/", "/rest/isales/v1/openapi/campaigns"]
)
@pytest.mark.sockets
async def test_a_base_url_with_the_api_path_is_not_doubled(
    make_client: MakeClient, server: FakeISales, suffix: str
) -> None:
    async with make_client(base_url=server.base_url + suffix) as client:
        await client.business_results.write_back(1, "B01")
    assert [r.path for r in server.requests] == ["/rest/isales/v1/openapi/campaigns/1/callBusiResult/1"]
    assert server.rejected_auth == 0
