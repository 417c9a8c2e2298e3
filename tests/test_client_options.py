"""``ClientOptions``: each client option spelled once, with one default and one check, used
by the constructor (one by one or as ``options=``) and evolved by ``with_options``."""

from __future__ import annotations

import inspect
import ssl
import warnings
from typing import Any

import attrs
import pytest

from isales_async import (
    DEFAULT_ROUTE_LIMITS,
    ClientOptions,
    ISalesClient,
    RetryBudget,
    RetryPolicy,
    RouteLimit,
    ServerError,
    Timeouts,
    ValidationError,
)
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales, Fault

from .conftest import MEMORY_BASE_URL
from .test_typed_errors import BAD_OPTIONS, THE_SK

#: The constructor's parameters that say where the client connects and who it is, not how.
IDENTITY = ("base_url", "ak", "sk", "vdn_id")


def build(sk: str = THE_SK, **options: Any) -> ISalesClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ISalesClient(MEMORY_BASE_URL, ak=DEFAULT_AK, sk=sk, vdn_id=1, **options)


def tuned() -> dict[str, Any]:
    """An option of every kind other than its default (the memory transport excludes the TLS ones)."""
    return {
        "max_concurrency": 3,
        "timeouts": Timeouts(connect=1, read=2),
        "retry": RetryPolicy(attempts=2),
        "hooks": (print,),
        "clock": FakeClock(),
        "max_response_bytes": 1024,
        "route_limits": {"callresult": RouteLimit(concurrency=2, interval=0.5)},
        "retry_budget": RetryBudget(),
        "transport": FakeISales().transport(),
    }


def test_every_option_has_one_default_and_one_type() -> None:
    parameters = inspect.signature(ISalesClient).parameters
    spelled = {name: p for name, p in parameters.items() if name not in (*IDENTITY, "options")}
    fields = attrs.fields_dict(ClientOptions)
    assert list(spelled) == list(fields)
    for name, parameter in spelled.items():
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default is fields[name].default, name
        assert parameter.annotation == fields[name].type, name
    assert ClientOptions().route_limits is DEFAULT_ROUTE_LIMITS


def test_options_one_by_one_and_as_options_make_the_same_client() -> None:
    options = tuned()
    one_by_one = build(**options)
    as_options = build(options=ClientOptions(**options))
    assert one_by_one.options == as_options.options == ClientOptions(**options)
    assert one_by_one.options != ClientOptions()
    assert build().options == ClientOptions()


async def test_options_given_as_options_are_the_ones_used(server: FakeISales) -> None:
    server.inject(Fault.status_code(503))
    options = ClientOptions(transport=server.transport(), clock=FakeClock(), retry=RetryPolicy(attempts=1))
    async with build(DEFAULT_SK, options=options) as client:
        with pytest.raises(ServerError):
            await client.obs_result_codes.page()
    assert len(server.requests) == 1


def test_options_and_options_one_by_one_are_not_mixed() -> None:
    with pytest.raises(ValidationError) as info:
        build(max_concurrency=3, options=ClientOptions(retry=RetryPolicy(attempts=1)))
    assert info.value.field == "options"
    with pytest.raises(ValidationError) as info:
        build(options={"max_concurrency": 3})
    assert info.value.field == "options"


OPTION_FIELDS = set(attrs.fields_dict(ClientOptions))
BAD_CLIENT_OPTIONS = [
    (field, options)
    for field, options in BAD_OPTIONS
    if set(options) <= OPTION_FIELDS and options.get("ca_file") != "/nonexistent/ca.pem"
]


@pytest.mark.parametrize(("field", "options"), BAD_CLIENT_OPTIONS, ids=[f for f, _ in BAD_CLIENT_OPTIONS])
def test_client_options_refuse_what_the_constructor_refuses(field: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        ClientOptions(**options)
    assert info.value.field == field


def test_client_options_do_no_io_the_client_reads_the_ca_file() -> None:
    options = ClientOptions(ca_file="/nonexistent/ca.pem")
    with pytest.raises(ValidationError) as info:
        ISalesClient("https://isales.test", ak=DEFAULT_AK, sk=THE_SK, vdn_id=1, options=options)
    assert info.value.field == "ca_file"


def test_with_options_changes_only_what_it_is_given() -> None:
    client = build(**tuned())
    before = client.options
    once = RetryPolicy(attempts=1)
    quick = Timeouts(read=0.5)

    view = client.with_options(retry=once)
    assert view.options == attrs.evolve(before, retry=once)
    chained = view.with_options(timeouts=quick)
    assert chained.options == attrs.evolve(before, retry=once, timeouts=quick)
    assert chained.with_options().options == chained.options
    assert client.options is before


async def test_a_view_of_a_view_keeps_the_retry_it_was_given(client: ISalesClient, server: FakeISales) -> None:
    server.inject(Fault.status_code(503))
    view = client.with_options(retry=RetryPolicy(attempts=1)).with_options(timeouts=Timeouts(read=5))
    with pytest.raises(ServerError):
        await view.obs_result_codes.page()
    assert len(server.requests) == 1


def test_the_options_hold_no_secret() -> None:
    context = ssl.create_default_context()
    client = ISalesClient("https://isales.test", ak=DEFAULT_AK, sk=THE_SK, vdn_id=1, ssl=context)
    assert not set(IDENTITY) & OPTION_FIELDS
    for shown in (repr(client.options), str(client.options), repr(client), repr(client.with_options())):
        assert THE_SK not in shown
    assert DEFAULT_SK not in repr(ClientOptions(**tuned()))
