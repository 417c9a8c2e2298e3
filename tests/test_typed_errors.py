"""Only our own errors cross the public API, each naming its field before anything is sent;
and the SK stays out of every repr, message and traceback frame, from the moment it is given."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import ssl
import time
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from isales_async import (
    ISalesClient,
    ISalesError,
    RetryBudget,
    RetryPolicy,
    RouteLimit,
    Secret,
    Timeouts,
    ValidationError,
    WrongEventLoopError,
    sign,
)
from isales_async._session import _encode_body
from isales_async.resources.call_results import CallResultQuery
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales

from .conftest import MakeClient, ascii_id
from .server_thread import server_in_thread

THE_SK = "the-secret-key-0123456789"


def build(**overrides: Any) -> ISalesClient:
    options: dict[str, Any] = {"base_url": "https://isales.test", "ak": "ak-1", "sk": THE_SK, "vdn_id": 1}
    options.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ISalesClient(options.pop("base_url"), **options)


class NotASession:
    """An object that is not an aiohttp session, with a repr (so a test id) that is the same in every run."""

    def __repr__(self) -> str:
        return "NotASession()"


BAD_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("ak", {"ak": "ключ"}),
    ("ak", {"ak": "a/b"}),
    ("ak", {"ak": "a b"}),
    ("ak", {"ak": "a\r\nX-Evil: 1"}),
    ("ak", {"ak": ""}),
    ("ak", {"ak": None}),
    ("ak", {"ak": b"ak"}),
    ("sk", {"sk": THE_SK + "\ud800"}),
    ("sk", {"sk": ""}),
    ("sk", {"sk": "   "}),
    ("sk", {"sk": None}),
    ("sk", {"sk": THE_SK.encode()}),
    ("sk", {"sk": Secret("\udfff")}),
    ("base_url", {"base_url": "http://[::1"}),
    ("base_url", {"base_url": "http://h:99999"}),
    ("base_url", {"base_url": "https://h:abc"}),
    ("base_url", {"base_url": "http://h:0"}),
    ("base_url", {"base_url": "ftp://x"}),
    ("base_url", {"base_url": ""}),
    ("base_url", {"base_url": "isales.test:28090"}),
    ("base_url", {"base_url": "https://user:password@isales.test"}),
    ("base_url", {"base_url": "https://isales.test/?tenant=1"}),
    ("base_url", {"base_url": "https://isales.test/#top"}),
    ("base_url", {"base_url": "https://isa les.test"}),
    ("base_url", {"base_url": None}),
    ("base_url", {"base_url": 28090}),
    ("vdn_id", {"vdn_id": 0}),
    ("vdn_id", {"vdn_id": "1"}),
    ("max_concurrency", {"max_concurrency": 0}),
    ("max_response_bytes", {"max_response_bytes": 0}),
    ("max_response_bytes", {"max_response_bytes": 1.5}),
    ("timeouts", {"timeouts": 5}),
    ("retry", {"retry": {"attempts": 1}}),
    ("retry_budget", {"retry_budget": 3}),
    ("session", {"session": NotASession()}),
    ("hooks", {"hooks": print}),
    ("hooks", {"hooks": [1]}),
    ("route_limits", {"route_limits": [("callresult", RouteLimit(10, 1.0))]}),
    ("route_limits['callresult']", {"route_limits": {"callresult": (10, 1.0)}}),
    ("ssl", {"ssl": "yes"}),
    ("ca_file", {"ca_file": "/nonexistent/ca.pem"}),
    ("insecure", {"insecure": True, "ca_file": "/etc/ssl/certs/ca-certificates.crt"}),
    ("insecure", {"insecure": 1}),
    ("insecure", {"insecure": None}),
    ("clock", {"clock": time.monotonic}),
    ("clock", {"clock": types.SimpleNamespace(monotonic=time.monotonic, wall=dt.datetime.now)}),
]


@pytest.mark.parametrize(("field", "options"), BAD_OPTIONS, ids=[ascii_id(f"{f}={o}")[:60] for f, o in BAD_OPTIONS])
def test_a_bad_client_option_is_a_validation_error_naming_it(field: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        build(**options)
    assert info.value.field == field


def test_a_ca_file_that_is_not_pem_is_a_validation_error(tmp_path: Any) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ValidationError) as info:
        build(ca_file=str(garbage))
    assert info.value.field == "ca_file"


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("connect", lambda: Timeouts(connect=0)),
        ("read", lambda: Timeouts(read=-1.0)),
        ("total", lambda: Timeouts(total=math.inf)),
        ("total", lambda: Timeouts(total="60")),
        ("concurrency", lambda: RouteLimit(0, 1.0)),
        ("interval", lambda: RouteLimit(10, -1.0)),
        ("attempts", lambda: RetryPolicy(attempts=0)),
        ("ratio", lambda: RetryBudget(ratio=math.nan)),
    ],
)
def test_option_objects_refuse_values_that_cannot_work(field: str, make: Callable[[], object]) -> None:
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.field == field


def test_good_options_are_accepted() -> None:
    client = build(
        ak="AK_x-1.~!",
        sk=Secret(THE_SK),
        base_url="https://[::1]:28090/prefix",
        timeouts=Timeouts(connect=1, read=2.5, total=None),
        route_limits={},
        hooks=(print,),
    )
    assert client.ak == "AK_x-1.~!"
    assert client._session._prefix == "/prefix/rest/isales/v1/openapi/campaigns/1/"


def test_with_options_refuses_what_is_not_an_option() -> None:
    client = build()
    with pytest.raises(ValidationError, match="timeouts"):
        client.with_options(timeouts=5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="retry"):
        client.with_options(retry=Timeouts())  # type: ignore[arg-type]


CALLS: list[tuple[str, Callable[[ISalesClient], Any]]] = [
    ("def_id", lambda c: c.external_results.get(None)),
    ("def_id", lambda c: c.external_results.get(True)),
    ("def_id", lambda c: c.external_results.get(1.5)),
    ("def_id", lambda c: c.external_results.get("\ud800")),
    ("def_id", lambda c: c.external_results.get("..")),
    ("def_id", lambda c: c.external_results.update(None, "shown", ["00602"])),
    ("def_id", lambda c: c.external_results.update(False, "shown", ["00602"])),
    ("def_id", lambda c: c.external_results.update(2.0, "shown", ["00602"])),
    ("call_id", lambda c: c.call_results.get(123)),
    ("call_id", lambda c: c.call_results.get(None)),
    ("call_id", lambda c: c.call_results.get("\udc80")),
    ("campaign_id", lambda c: c.call_results.page(1001)),
    ("campaign_id", lambda c: c.call_results.page(None)),
    ("campaign_id", lambda c: c.call_results.iter(True)),
    ("show_detail", lambda c: c.call_results.page("1001", show_detail="yes")),
    ("begin_time", lambda c: c.call_results.page("1001", begin_time="2026-11-01", end_time="2026-11-05")),
    ("session_id", lambda c: c.call_results.page("1001", session_id=5)),
]
# Text JSON cannot carry: refused by the text check naming the argument, or failing that
# by the session's body encoder naming the API's key.
UNENCODABLE: list[tuple[set[str], Callable[[ISalesClient], Any]]] = [
    ({"session_id", "sessionId"}, lambda c: c.call_results.page("1001", session_id="s\ud800")),
    ({"display_result", "displayResult"}, lambda c: c.external_results.create("\ud800", ["00602"])),
    (
        {"busi_result_desc", "busiResultDesc"},
        lambda c: c.business_results.write_back(1, "B01", busi_result_desc="\ud800"),
    ),
]


@pytest.mark.parametrize(("field", "call"), CALLS, ids=[f"{i}-{f}" for i, (f, _) in enumerate(CALLS)])
async def test_a_bad_argument_is_a_validation_error_before_anything_is_sent(
    client: ISalesClient, server: FakeISales, field: str, call: Callable[[ISalesClient], Any]
) -> None:
    with pytest.raises(ValidationError) as info:
        result = call(client)
        if isinstance(result, types.CoroutineType):
            await result
    assert info.value.field == field
    assert server.requests == []


@pytest.mark.parametrize(("fields", "call"), UNENCODABLE)
async def test_text_json_cannot_carry_is_a_validation_error_before_anything_is_sent(
    client: ISalesClient, server: FakeISales, fields: set[str], call: Callable[[ISalesClient], Any]
) -> None:
    with pytest.raises(ValidationError) as info:
        await call(client)
    assert info.value.field in fields
    assert server.requests == []


def test_the_body_encoder_names_the_key_json_cannot_carry() -> None:
    with pytest.raises(ValidationError) as info:
        _encode_body("callresult", {"pageNum": 1, "sessionId": "s\ud800"})
    assert info.value.field == "sessionId"
    assert "callresult" in str(info.value)
    assert info.value.__context__ is None


async def test_an_int_id_is_taken_where_the_api_documents_one(client: ISalesClient, server: FakeISales) -> None:
    created = await client.external_results.create("shown", ["00602"])
    assert (await client.external_results.get(int(created.def_id))).def_id == created.def_id
    await client.external_results.update(int(created.def_id), "shown again", ["00603"])
    assert server.external_results[created.def_id]["displayResult"] == "shown again"


def test_sign_names_text_utf8_cannot_encode() -> None:
    base = {"method": "GET", "path": "/p", "query": [], "host": "h", "body": "", "ak": "ak", "sk": "sk"}
    base["timestamp"] = "2026-11-23T00:00:00Z"
    for field, value in [("path", "/\ud800"), ("body", "\udfff"), ("sk", "s\ud800"), ("query", [("a", "\ud800")])]:
        with pytest.raises(ValidationError) as info:
            sign(**{**base, field: value})
        assert info.value.field == field
        assert info.value.__context__ is None  # a UnicodeEncodeError's repr would quote the text


def test_call_result_query_checks_types_itself() -> None:
    with pytest.raises(ValidationError, match="end_time"):
        CallResultQuery("1001", begin_time=dt.date(2026, 11, 1), end_time=object())  # type: ignore[arg-type]


# -- the SK ---------------------------------------------------------------------------------


def test_a_secret_hides_its_value_and_the_signer_reveals_it() -> None:
    secret = Secret(THE_SK)
    assert THE_SK not in f"{secret!r} {secret} {[secret]} {secret.problem}"
    assert Secret(secret).reveal() == THE_SK
    signed = sign(method="GET", path="/", query=[], host="h", body="", ak="a", sk=secret, timestamp="t")
    assert signed == sign(method="GET", path="/", query=[], host="h", body="", ak="a", sk=THE_SK, timestamp="t")


def test_an_unusable_secret_says_why_without_quoting_it() -> None:
    secret = Secret(THE_SK + "\ud800")
    assert secret.problem is not None
    assert THE_SK not in secret.problem
    with pytest.raises(ValidationError) as info:
        secret.reveal()
    assert info.value.field == "sk"
    assert THE_SK not in f"{info.value!r} {info.value}"


def frames(error: BaseException) -> Iterator[types.FrameType]:
    """Every frame of ``error``'s traceback and of its causes and contexts, but this module's."""
    seen: BaseException | None = error
    while seen is not None:
        tb = seen.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != __file__:
                yield tb.tb_frame
            tb = tb.tb_next
        seen = seen.__cause__ or seen.__context__


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "http://[::1"},
        {"vdn_id": 0},
        {"ak": "a/b"},
        {"sk": THE_SK + "\ud800"},
        {"sk": THE_SK.encode()},
        {"timeouts": 5},
        {"ca_file": "/nonexistent/ca.pem"},
        {"sk": Secret(THE_SK), "base_url": "ftp://x"},
    ],
    ids=lambda options: next(iter(options)),
)
def test_a_failing_constructor_keeps_the_sk_out_of_every_frame_and_message(options: dict[str, Any]) -> None:
    with pytest.raises(ISalesError) as info:
        build(**options)
    inspected = list(frames(info.value))
    assert any(f.f_code.co_name == "__init__" and isinstance(f.f_locals.get("self"), ISalesClient) for f in inspected)
    for frame in inspected:
        for name, value in frame.f_locals.items():
            shown = f"{value!r} {value}"  # repr() of the half-built client must not raise either
            assert THE_SK not in shown, f"{frame.f_code.co_name}: {name}"
    error: BaseException | None = info.value
    while error is not None:
        assert THE_SK not in f"{error!r} {error} {error.args}"
        error = error.__cause__ or error.__context__


def test_repr_of_a_client_that_was_never_initialised_does_not_raise() -> None:
    blank = object.__new__(ISalesClient)
    assert repr(blank) == "ISalesClient(base_url='?', ak='?', vdn_id='?')"


async def test_a_secret_signs_end_to_end(make_client: MakeClient, server: FakeISales) -> None:
    async with make_client(sk=Secret(DEFAULT_SK)) as client:
        assert (await client.obs_result_codes.page(page_size=1)).total_count == 120
    assert server.rejected_auth == 0
    assert DEFAULT_SK not in repr(client._session.__dict__)


async def test_an_aiohttp_session_and_an_ssl_context_are_accepted() -> None:
    async with aiohttp.ClientSession() as session:
        assert build(session=session, ssl=ssl.create_default_context())._session._injected is session


def test_a_clock_without_sleep_is_named_in_the_error() -> None:
    with pytest.raises(ValidationError, match=r"clock: must be a Clock .* \(without sleep\(\)\)"):
        build(clock=types.SimpleNamespace(monotonic=time.monotonic, wall=dt.datetime.now))


def test_a_clock_that_is_no_clock_is_refused_by_the_push_receiver_too() -> None:
    from isales_async import PushReceiver

    async def callback(results: object) -> None: ...

    with pytest.raises(ValidationError) as info:
        PushReceiver(callback, token="t", clock="system")  # type: ignore[arg-type]
    assert info.value.field == "clock"


def test_a_client_used_in_another_loop_is_refused_before_sending() -> None:
    async def used_without_reopening(client: ISalesClient) -> None:
        try:
            with pytest.raises(WrongEventLoopError, match="opened in another event loop"):
                await client.obs_result_codes.page(page_size=1)
        finally:
            await client.aclose()

    with server_in_thread() as server:
        client = build(base_url=server.base_url, sk=DEFAULT_SK, ak=DEFAULT_AK)
        asyncio.run(client.__aenter__())
        asyncio.run(used_without_reopening(client))
        assert server.requests == []
    assert issubclass(WrongEventLoopError, RuntimeError)


def test_a_client_reopened_in_a_new_loop_works_there_limiter_included() -> None:
    """One asyncio.run per batch, one client: reopened by ``async with`` in each loop, it
    works in each, though its limiter was bound to the first loop by a wait on it."""

    async def two_pages_at_once(client: ISalesClient) -> None:
        async with client:  # max_concurrency 1: the second page waits on the limiter
            await asyncio.gather(*(client.obs_result_codes.page(page_size=1) for _ in range(2)))

    with server_in_thread() as server:
        client = build(base_url=server.base_url, sk=DEFAULT_SK, ak=DEFAULT_AK, max_concurrency=1)
        asyncio.run(two_pages_at_once(client))
        asyncio.run(two_pages_at_once(client))
        assert len(server.requests) == 4


@pytest.mark.parametrize(
    "obs_codes",
    [("00605" for _ in range(1)), {"00605"}, {"00605": "busy"}, "00605", None, [], ()],
    ids=["generator", "set", "dict", "str", "None", "empty list", "empty tuple"],
)
def test_obs_codes_must_be_a_non_empty_list_or_tuple(obs_codes: Any) -> None:
    from isales_async.resources.external_results import _checked_codes

    with pytest.raises(ValidationError) as info:
        _checked_codes(obs_codes)
    assert info.value.field == "obs_codes"


def test_obs_codes_as_a_tuple_go_out_as_the_list_of_its_codes() -> None:
    from isales_async.resources.external_results import _body

    assert _body("busy", ("00605", "00606")) == {"displayResult": "busy", "obsCodes": ["00605", "00606"]}
