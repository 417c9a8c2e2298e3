"""Review of issues 13 and 12 (points 1, 11): defects confirmed through the public API.

Each test states what the issue demands and fails on the code as merged; each is marked
``xfail(strict=True)`` so the suite stays green until the defect is fixed, when the
marker must go. The fake server is subclassed where its quirks cannot be combined (a
short page *and* no usable total) or do not exist (rows in no fixed order).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import random
import re
import warnings
from collections.abc import Sequence
from typing import Any

import anyio
import orjson
import pytest

from isales_async import (
    CallResult,
    ISalesClient,
    ISalesError,
    PaginationError,
    PushReceiver,
    RetryPolicy,
    ValidationError,
)
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeClock, FakeISales, Fault

LENGTH = 120  # 50 + 50 + 20 at 50 a page


class ShortPageTwoWithoutTotal(FakeISales):
    """totalCount -1 (the usual "unknown") on every page, and page 2 lacks its last item."""

    def _page_fields(self, endpoint: str, items: Sequence[Any], num: int, size: int, field: str) -> dict[str, Any]:
        fields = super()._page_fields(endpoint, items, num, size, field)
        fields["totalCount"] = -1
        if num == 2 and len(fields[field]) == size:
            fields[field] = fields[field][:-1]
        return fields


class ShortThenEmptyPageTwo(FakeISales):
    """A plausible total of 120; page 2 comes back short (49 items), and empty when asked again."""

    answers_to_page_two = 0

    def _page_fields(self, endpoint: str, items: Sequence[Any], num: int, size: int, field: str) -> dict[str, Any]:
        fields = super()._page_fields(endpoint, items, num, size, field)
        if num == 2:
            self.answers_to_page_two += 1
            fields[field] = fields[field][:-1] if self.answers_to_page_two == 1 else []
        return fields


class IgnoresPageNumInNoFixedOrder(FakeISales):
    """Every pageNum answered with page 1, its rows in whatever order the database returns them."""

    def _page_fields(self, endpoint: str, items: Sequence[Any], num: int, size: int, field: str) -> dict[str, Any]:
        fields = super()._page_fields(endpoint, items, 1, size, field)
        random.Random(len(self.requests)).shuffle(fields[field])
        return fields


def client_of(server: FakeISales, **options: Any) -> ISalesClient:
    """A client of ``server``: over loopback when it listens, else through its memory transport."""
    if not server.base_url:
        options["transport"] = server.transport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ISalesClient(
            server.base_url or "https://isales.test",
            ak=DEFAULT_AK,
            sk=DEFAULT_SK,
            vdn_id=1,
            clock=options.pop("clock", FakeClock()),
            **options,
        )


async def obs_codes_or_error(server: FakeISales, **iter_options: Any) -> tuple[list[str], Exception | None]:
    codes: list[str] = []
    async with client_of(server) as client:
        try:
            async for code in client.obs_result_codes.iter(page_size=50, **iter_options):
                codes.append(code.obs_code)
        except PaginationError as exc:
            return codes, exc
    return codes, None


# -- pagination stops on evidence, never on faith (issue 13) -------------------------------


async def test_a_short_middle_page_without_a_usable_total_is_not_the_end() -> None:
    async with ShortPageTwoWithoutTotal(obs_code_count=LENGTH) as server:
        codes, error = await obs_codes_or_error(server)
    assert (len(codes), isinstance(error, PaginationError)) == (50, True)


async def test_a_short_page_whose_re_request_is_empty_raises() -> None:
    async with ShortThenEmptyPageTwo(obs_code_count=LENGTH) as server:
        codes, error = await obs_codes_or_error(server)
        pages_asked = [dict(r.query)["pageNum"] for r in server.requests]
    assert pages_asked == ["1", "2", "2"]
    assert (len(codes), isinstance(error, PaginationError)) == (50, True)


async def test_a_server_that_ignores_page_num_in_no_fixed_order_raises_at_page_two() -> None:
    async with IgnoresPageNumInNoFixedOrder(obs_code_count=LENGTH) as server:
        codes, error = await obs_codes_or_error(server, max_pages=20)
        requests = len(server.requests)
    assert (len(codes), len(set(codes)), requests) == (50, 50, 2)
    assert isinstance(error, PaginationError)
    assert "repeats" in str(error)


# -- bodies are bounded after decoding (issue 13) --------------------------------------------


def test_the_aiohttp_requirement_admits_only_versions_that_bound_decoding() -> None:
    requirements = importlib.metadata.requires("isales-async") or []
    (aiohttp_requirement,) = [r for r in requirements if re.match(r"aiohttp\b", r)]
    minimum = re.search(r">=\s*([0-9.]+)", aiohttp_requirement)
    assert minimum is not None
    assert tuple(int(part) for part in minimum.group(1).split(".")) >= (3, 13, 3)


# -- no call waits past its own deadline (issue 12, point 1) --------------------------------


async def test_an_attempt_in_flight_ends_at_the_calls_deadline(server: FakeISales) -> None:
    clock = FakeClock(autojump=False)
    arrived = asyncio.Event()
    server.on_request.append(lambda _: arrived.set())
    server.inject(Fault.hang(endpoint="queryOBSResultCode"))
    async with client_of(server, clock=clock, retry=RetryPolicy(deadline=5.0, attempts=1)) as client:
        call = asyncio.ensure_future(client.obs_result_codes.page(page_size=1))
        try:
            with anyio.fail_after(5):  # a guard against a hang, not a threshold
                await arrived.wait()
            clock.advance(6.0)  # the call's deadline has passed on its clock
            server.release()  # the server answers now: a call that honours its deadline is over already
            with pytest.raises(ISalesError):
                await call
        finally:
            server.release()
            if not call.done():
                call.cancel()


# -- only our own errors cross the public API (issue 13) --------------------------------------


def test_a_clock_that_is_no_clock_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        ISalesClient("https://isales.test", ak="ak", sk="sk", vdn_id=1, clock="system")  # type: ignore[arg-type]
    assert info.value.field == "clock"


def test_insecure_must_be_a_bool() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValidationError) as info:
            ISalesClient("https://isales.test", ak="ak", sk="sk", vdn_id=1, insecure="false")  # type: ignore[arg-type]
    assert info.value.field == "insecure"


def test_a_client_used_from_another_event_loop_is_a_typed_error() -> None:
    client = ISalesClient("http://127.0.0.1:9", ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, retry=RetryPolicy(attempts=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        asyncio.run(client.__aenter__())  # opened in one loop, never closed there

        async def from_another_loop() -> BaseException | None:
            try:
                await client.obs_result_codes.page()
            except BaseException as exc:  # whatever escapes is the point
                return exc
            finally:
                await client.aclose()
            return None

        escaped = asyncio.run(from_another_loop())
    assert isinstance(escaped, ISalesError)


@pytest.mark.parametrize("obs_codes", [iter(["00605"]), {"00605": "busy"}], ids=["iterator", "dict"])
async def test_obs_codes_that_are_not_a_list_are_refused_before_sending(
    client: ISalesClient, server: FakeISales, obs_codes: Any
) -> None:
    with pytest.raises(ValidationError) as info:
        await client.external_results.create("busy", obs_codes)
    assert (info.value.field, server.requests) == ("obs_codes", [])


# -- parsing tolerates what real servers send (issue 13) --------------------------------------


async def test_a_def_level_of_any_json_type_keeps_the_page(client: ISalesClient, server: FakeISales) -> None:
    odd = [1.5, True, {"level": 1}, ["1"]]
    data = [{"code": f"B{i}", "name": "n", "defLevel": level} for i, level in enumerate(odd)]
    body = {"resultCode": "0200000", "resultDesc": "ok", "data": data, "totalCount": len(data)}
    server.inject(Fault.raw_body(orjson.dumps(body), endpoint="queryBusinessResults"))
    page = await client.business_results.page(page_size=50)
    assert [(r.code, r.def_level) for r in page.items] == [(f"B{i}", level) for i, level in enumerate(odd)]


# -- pushes reach the callback exactly once (issue 13) ----------------------------------------


def test_a_callback_that_is_not_async_is_refused_at_construction() -> None:
    def callback(results: Sequence[CallResult]) -> None: ...

    with pytest.raises(ValidationError) as info:
        PushReceiver(callback, token="t")  # type: ignore[arg-type]
    assert info.value.field == "callback"


async def test_a_timed_out_callback_that_ignores_cancellation_does_not_hold_its_worker() -> None:
    clock = FakeClock(autojump=False)
    entered, cleanup_done = asyncio.Event(), asyncio.Event()
    delivered: list[str] = []

    async def callback(results: Sequence[CallResult]) -> None:
        if results[0].call_id != "b":
            entered.set()
            try:
                await asyncio.Event().wait()  # the insert hangs on a dead connection...
            finally:
                await cleanup_done.wait()  # ...and so does the rollback in its cleanup
        delivered.extend(r.call_id or "" for r in results)

    receiver = PushReceiver(callback, token="t", workers=1, callback_timeout=30, clock=clock)
    first = asyncio.ensure_future(receiver.handle(orjson.dumps([{"callId": "a"}]), token="t"))
    try:
        await entered.wait()
        await clock.wait_for_sleepers(1)
        clock.advance(30)
        assert (await first).status == 503
        with anyio.fail_after(2):  # a guard against a hang, not a threshold
            second = await receiver.handle(orjson.dumps([{"callId": "b"}]), token="t")
        assert (second.status, delivered) == (200, ["b"])
    finally:
        cleanup_done.set()
        await receiver.aclose(timeout=0)
