"""The fake server's own signature verifier, held against every vector of the spec."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from isales_async.testing import FakeISales, _auth, _server

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "c2-auth-vectors.json").read_text())
IDS = [v["name"] for v in VECTORS]


def signed_at(vector: dict[str, Any]) -> dt.datetime:
    return dt.datetime.strptime(vector["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def check(vector: dict[str, Any], **changes: Any) -> str:
    request: dict[str, Any] = {
        "method": vector["method"],
        "path": vector["path"],
        "query": [tuple(pair) for pair in vector["query"]],
        "headers": dict(vector["headers"]),
        "body": vector["body"],
        "secret_of": {vector["ak"]: vector["sk"]}.get,
        "now": signed_at(vector),
        "max_skew": 900.0,
    }
    request.update(changes)
    return _auth.check(vector["authorization"], **request)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_the_verifier_rebuilds_every_vector_byte_for_byte(vector: dict[str, Any]) -> None:
    canonical = _auth.canonical_request(
        vector["method"], vector["path"], [tuple(q) for q in vector["query"]], vector["headers"], vector["body"]
    )
    assert canonical == vector["canonical_request"]
    assert (
        _auth.authorization(vector["ak"], vector["sk"], vector["timestamp"], ["host"], canonical)
        == (vector["authorization"])
    )
    assert check(vector) == ""


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_the_verifier_refuses_any_change_to_a_vector(vector: dict[str, Any]) -> None:
    changed = {
        "method": {"method": "PUT"},
        "path": {"path": vector["path"] + "x"},
        "query": {"query": [*map(tuple, vector["query"]), ("extra", "1")]},
        "host": {"headers": {"host": vector["headers"]["host"] + "0"}},
        "body": {"body": vector["body"] + " "},
        "sk": {"secret_of": {vector["ak"]: vector["sk"] + "x"}.get},
        "ak": {"secret_of": {}.get},
        "skew": {"now": signed_at(vector) + dt.timedelta(seconds=901)},
        "no host": {"headers": {}},
    }
    problems = {name: check(vector, **change) for name, change in changed.items()}
    assert [name for name, problem in problems.items() if not problem] == []


@pytest.mark.parametrize(
    ("authorization", "problem"),
    [
        ("", "not auth-v2"),
        ("Bearer x", "not auth-v2"),
        ("auth-v2/ak/2024-01-01 00:00:00/host/" + "0" * 64, "timestamp"),
        ("auth-v2/ak/2024-13-01T00:00:00Z/host/" + "0" * 64, "timestamp"),
        ("auth-v2/ak/2024-01-01T00:00:00Z/Host/" + "0" * 64, "lower-case"),
        ("auth-v2/ak/2024-01-01T00:00:00Z/x-a;host/" + "0" * 64, "sorted"),
        ("auth-v2/ak/2024-01-01T00:00:00Z/content-type/" + "0" * 64, "host header is not signed"),
        ("auth-v2/ak/2024-01-01T00:00:00Z/host/" + "A" * 64, "64 lower-case hex"),
        ("auth-v2//2024-01-01T00:00:00Z/host/" + "0" * 64, "AK is empty"),
    ],
)
def test_malformed_authorization_values_are_named(authorization: str, problem: str) -> None:
    parsed = _auth.parse(authorization)
    assert isinstance(parsed, str) and problem in parsed


def test_percent_encoding_keeps_only_the_unreserved_bytes() -> None:
    assert _auth.percent_encode("aZ09-._~") == "aZ09-._~"
    assert _auth.percent_encode("a/b c:{}+=") == "a%2Fb%20c%3A%7B%7D%2B%3D"
    assert _auth.percent_encode("é") == "%C3%A9"


def test_the_fake_does_not_import_the_clients_signer() -> None:
    """A bug shared by signer and verifier would pass every test: the fake has none of the client's."""
    for module in (_auth, _server):
        tree = ast.parse(inspect.getsource(module))
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert [name for name in imported if "signing" in name] == []


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
async def test_the_fake_accepts_every_vector_sent_over_http(vector: dict[str, Any]) -> None:
    async with FakeISales(credentials={vector["ak"]: vector["sk"]}, max_clock_skew=1e10) as server:
        query = "&".join(f"{_auth.percent_encode(k)}={_auth.percent_encode(v)}" for k, v in vector["query"])
        url = aiohttp.client.URL(server.base_url + vector["path"] + (f"?{query}" if query else ""), encoded=True)
        headers = {
            "Host": vector["headers"]["host"],
            "Authorization": vector["authorization"],
            "Content-Type": "application/json; charset=UTF-8",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(vector["method"], url, data=vector["body"].encode() or None, headers=headers) as response,
        ):
            assert (response.status, server.rejected_auth, len(server.requests)) == (200, 0, 1)
