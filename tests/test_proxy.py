"""``trust_env=True``: the proxy from ``HTTP_PROXY``/``HTTPS_PROXY``, ``NO_PROXY`` honoured,
end to end through a real forwarding proxy on loopback, with every signature still valid."""

from __future__ import annotations

import pytest
import yarl

from isales_async import ISalesClient, RetryPolicy, ValidationError, Writeback
from isales_async._aiohttp import proxy_from_env
from isales_async.testing import FakeISales

from .conftest import MakeClient
from .forward_proxy import forward_proxy

pytestmark = pytest.mark.sockets  # proxies are sockets

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def test_trust_env_sends_every_request_through_the_proxy(
    make_client: MakeClient, server: FakeISales, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with make_client(trust_env=True) as client:
            codes = [c async for c in client.obs_result_codes.iter(page_size=50)]
            await client.business_results.write_back(1, "B01", sub_status="B01-1")
            await client.with_options(retry=RetryPolicy(attempts=1)).business_results.write_back(2, "B01")
            report = await client.business_results.write_back_many([Writeback(3, "B02"), Writeback(4, "B03")])
    assert len(codes) == 120 and len(report.succeeded) == 2
    assert server.rejected_auth == 0  # every signature verified after the hop
    assert len(proxy.forwarded) == len(server.requests) == 3 + 4
    assert all(url.startswith(server.base_url + "/rest/isales/v1/openapi/campaigns/1/") for url in proxy.forwarded)
    assert sorted(server.applied_counts()) == ["1", "2", "3", "4"]


async def test_without_trust_env_the_proxy_variables_are_ignored(
    make_client: MakeClient, server: FakeISales, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with make_client() as client:
            await client.business_results.write_back(1, "B01")
    assert proxy.forwarded == [] and len(server.requests) == 1


async def test_no_proxy_sends_the_listed_hosts_directly(
    make_client: MakeClient, server: FakeISales, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "example.com,127.0.0.1")
        async with make_client(trust_env=True) as client:
            await client.business_results.write_back(1, "B01")
    assert proxy.forwarded == [] and len(server.requests) == 1


async def test_proxy_credentials_go_to_the_proxy_only(
    make_client: MakeClient, server: FakeISales, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://alice:s3cret@"))
        async with make_client(trust_env=True) as client:
            await client.business_results.write_back(1, "B01")
    assert proxy.proxy_authorizations == ["Basic YWxpY2U6czNjcmV0"]  # alice:s3cret
    assert len(server.requests) == 1 and server.rejected_auth == 0


def test_the_proxy_is_chosen_by_the_scheme_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "isales.internal")
    assert proxy_from_env(yarl.URL("https://isales.example:28090")) == (yarl.URL("http://proxy.corp:3128"), None)
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:pw@proxy.corp:3128")
    assert proxy_from_env(yarl.URL("https://isales.example:28090")) == (
        yarl.URL("http://proxy.corp:3128"),
        {"Proxy-Authorization": "Basic Ym9iOnB3"},
    )
    assert proxy_from_env(yarl.URL("http://isales.example:28090")) == (None, None)
    assert proxy_from_env(yarl.URL("https://isales.internal:28090")) == (None, None)


def test_trust_env_must_be_a_bool() -> None:
    with pytest.raises(ValidationError, match="trust_env"):
        ISalesClient("https://h:1", ak="a", sk="s", vdn_id=1, trust_env="false")  # type: ignore[arg-type]
