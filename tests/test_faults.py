"""The fault matrix, outages, cancellation, TLS, and property tests (issue: prove nothing is
lost, duplicated or leaked)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import logging
import random
import ssl
import string
import warnings
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isales_async import (
    BatchAbortedError,
    ConnectError,
    ISalesClient,
    ISalesError,
    OutcomeUnknownError,
    RetryBudget,
    RetryScheduled,
    Timeouts,
    TLSError,
    sign,
)
from isales_async._endpoints import ENDPOINTS
from isales_async._envelope import decipher
from isales_async.batch._journal import Journal, Status
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, Chaos, FakeClock, FakeISales, Fault

from .conftest import MakeClient
from .test_batch import assert_each_once, assert_server_agrees, good

FAST_TIMEOUTS = Timeouts(connect=1.0, read=0.05, total=2.0)

# Each fault of the matrix, and whether a read survives it by retrying.
MATRIX = {
    "429-retry-after": (Fault.status_code(429, retry_after="1"), True),
    "503": (Fault.status_code(503), True),
    "500": (Fault.status_code(500), False),
    "502": (Fault.status_code(502), True),
    "504": (Fault.status_code(504), True),
    "reset-before": (Fault.reset(after=False), True),
    "reset-after": (Fault.reset(after=True), True),
    "read-timeout": (Fault.hang(), True),
    "slower-than-timeout": (Fault.slow(0.3), True),
    "malformed-json-200": (Fault.raw_body(b'{"resultCode": "0200000", "obsCodes": ['), False),
    "html-200": (Fault.raw_body(b"<html><body>login</body></html>", content_type="text/html"), False),
    "json-not-object-200": (Fault.raw_body(b"[1, 2, 3]"), False),
    "empty-200": (Fault.raw_body(b""), False),
    "truncated-body": (Fault.truncated(), True),
}

# What a single write meets under each fault of the matrix: its outcome, and how many times
# the server applied it (``None``: either, since the fake applies a slow request after the
# client gave up on it, at a moment no test controls).
WRITE_OUTCOMES: dict[str, tuple[str, int | None]] = {
    "429-retry-after": ("ok", 1),  # refused unprocessed, so retried
    "503": ("ok", 1),
    "500": ("unknown", 0),  # may have been processed, as far as the client can tell
    "502": ("unknown", 0),
    "504": ("unknown", 0),
    "reset-before": ("unknown", 0),  # the connection drops after the request went out
    "reset-after": ("unknown", 1),
    "read-timeout": ("unknown", 0),
    "slower-than-timeout": ("unknown", None),
    "malformed-json-200": ("unknown", 1),
    "html-200": ("unknown", 1),
    "json-not-object-200": ("unknown", 1),
    "empty-200": ("unknown", 1),
    "truncated-body": ("unknown", 1),
}


def fresh(fault: Fault, endpoint: str | None = None) -> Fault:
    return Fault(fault.kind, endpoint, 1, fault.status, fault.retry_after, fault.body, fault.content_type, fault.delay)


@pytest.mark.parametrize("name", list(MATRIX))
async def test_reads_finish_with_every_item_once_or_raise_typed(
    make_client: MakeClient, server: FakeISales, name: str
) -> None:
    fault, survives = MATRIX[name]
    server.inject(fresh(fault, "queryOBSResultCode"))
    server.on_request.append(lambda r: len(server.requests) == 2 and server.inject(fresh(fault, "queryOBSResultCode")))
    async with make_client(timeouts=FAST_TIMEOUTS) as client:
        try:
            codes = [c.obs_code async for c in client.obs_result_codes.iter(page_size=50, prefetch=2)]
        except ISalesError:
            assert not survives
        else:
            assert survives
            assert codes == [c["obsCode"] for c in server.obs_codes]


@pytest.mark.parametrize("name", list(MATRIX))
async def test_a_single_write_is_applied_at_most_once_and_reported_truthfully(
    make_client: MakeClient, server: FakeISales, name: str
) -> None:
    fault, _ = MATRIX[name]
    server.inject(fresh(fault, "callBusiResult"))
    async with make_client(timeouts=FAST_TIMEOUTS) as client:
        try:
            await client.business_results.write_back(77, "B01")
        except OutcomeUnknownError:
            outcome = "unknown"
        except ISalesError:
            outcome = "failed"
        else:
            outcome = "ok"
    applied = server.applied_counts().get("77", 0)
    assert applied <= 1
    assert outcome != "ok" or applied == 1
    assert outcome != "failed" or applied == 0
    expected_outcome, expected_applied = WRITE_OUTCOMES[name]
    assert outcome == expected_outcome
    assert applied == expected_applied if expected_applied is not None else applied in (0, 1)
    if outcome == "unknown":
        assert len(server.requests_to("callBusiResult")) == 1


@pytest.mark.parametrize("name", list(MATRIX))
async def test_a_batch_accounts_for_every_record_under_each_fault(
    make_client: MakeClient, server: FakeISales, name: str
) -> None:
    fault, _ = MATRIX[name]
    server.inject(*(fresh(fault, "callBusiResult") for _ in range(3)))
    records = good(30)
    async with make_client(timeouts=FAST_TIMEOUTS) as client:
        report = await client.business_results.write_back_many(records, concurrency=5)
    assert_each_once(records, report)
    assert_server_agrees(server, report)


@pytest.mark.sockets
async def test_an_outage_mid_batch_is_capped_by_the_budget_then_resumed(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    retries: list[RetryScheduled] = []
    records = good(300)
    journal = tmp_path / "outage.journal"

    outage: list[asyncio.Future[None]] = []

    def go_down_at_100(_: object) -> None:
        if len(server.applied) == 100:
            outage.append(asyncio.ensure_future(server.go_down()))

    server.on_request.append(go_down_at_100)
    hooks = [lambda e: isinstance(e, RetryScheduled) and retries.append(e)]
    async with make_client(hooks=hooks, retry_budget=RetryBudget(ratio=0.1, capacity=10)) as client:
        with pytest.raises(BatchAbortedError) as aborted:  # unreachable past the retries: the batch stops
            await client.business_results.write_back_many(records, concurrency=5, journal=journal)
    first = aborted.value.report
    assert isinstance(aborted.value.cause, ConnectError)
    assert first.not_sent and not first.failed  # records the outage caught stay pending, not failed
    assert len(retries) <= 10 + 0.1 * 300  # the budget, not attempts x records
    taken = [o.record for o in [*first.succeeded, *first.unknown, *first.not_sent]]
    assert len(taken) == len(set(taken)) == first.total and set(taken) <= set(records)

    await server.come_back()
    async with make_client() as client:
        second = await client.business_results.write_back_many(records, concurrency=5, journal=journal)
    assert all(n == 1 for n in server.applied_counts().values())
    everything = {str(r.data_id) for r in records}
    assert everything - {o.key for o in first.unknown} <= set(server.applied_counts()) <= everything
    assert not second.failed


async def test_cancelling_a_batch_leaves_nothing_running(
    make_client: MakeClient, server: FakeISales, tmp_path: Path
) -> None:
    server.latency = 0.002
    async with make_client() as client:
        with anyio.move_on_after(0.05):
            await client.business_results.write_back_many(good(5000), concurrency=20, journal=tmp_path / "j")
        assert client._session.in_flight == 0
    with Journal(tmp_path / "j") as journal:
        sending, queued = journal.count(Status.SENDING), journal.count(Status.QUEUED)
    # In doubt: only what was in flight; put back as queued: what its waves held and what
    # its workers held unsent (waiting for one of the client's 10 slots), fewer than 2 x 20.
    assert sending <= 20 and sending + queued < 2 * 20


@pytest.mark.sockets
async def test_no_unclosed_session_warning(server: FakeISales) -> None:
    gc.collect()  # what earlier tests left behind is theirs, not this client's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = ISalesClient(server.base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, clock=FakeClock())
        async with client:
            codes = client.obs_result_codes.iter(page_size=10, prefetch=3)
            async for _ in codes:
                break
            await codes.aclose()
        del client
        gc.collect()
    assert not [w for w in caught if "nclosed" in str(w.message)]


async def test_the_sk_never_appears_through_a_run_with_faults(
    make_client: MakeClient, server: FakeISales, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.chaos = Chaos(
        0.3, [f for f, _ in MATRIX.values() if f.kind.value not in ("hang", "delay")], random.Random(7)
    )
    texts: list[str] = []
    async with make_client(timeouts=FAST_TIMEOUTS) as client:
        texts.append(repr(client))
        report = await client.business_results.write_back_many(good(200), concurrency=10)
        for outcome in [*report.failed, *report.unknown]:
            error = outcome.error
            while error is not None:
                texts.append(f"{error!r} {error} {error.args}")
                error = error.__cause__
        try:
            async for _ in client.obs_result_codes.iter(page_size=5):
                pass
        except ISalesError as exc:
            texts.append(f"{exc!r} {exc}")
    texts.append(caplog.text)
    texts.extend(str(record.__dict__) for record in caplog.records)
    assert report.unknown or report.failed
    assert all(DEFAULT_SK not in text for text in texts)


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def tls_material(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_context, ca_file


async def test_tls_is_verified_by_default_and_a_ca_file_is_honoured(tls_material: tuple[ssl.SSLContext, Path]) -> None:
    server_context, ca_file = tls_material
    server = FakeISales()
    url = await server.start(ssl_context=server_context)
    try:
        async with ISalesClient(url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, clock=FakeClock()) as client:
            with pytest.raises(TLSError):
                await client.obs_result_codes.page()
        assert server.requests == []
        async with ISalesClient(url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, ca_file=str(ca_file)) as client:
            assert (await client.obs_result_codes.page(page_size=1)).total_count == 120
        with pytest.warns(UserWarning, match="verification is disabled"):
            insecure = ISalesClient(url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, insecure=True)
        async with insecure:
            assert (await insecure.obs_result_codes.page(page_size=1)).total_count == 120
    finally:
        await server.close()


# -- properties ---------------------------------------------------------------------------------


def model_enc(text: str) -> str:
    """Percent-encoding written from the spec's words, byte by byte."""
    keep = set((string.ascii_letters + string.digits + "-._~").encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def model_authorization(
    method: str, path: str, query: list[tuple[str, str]], host: str, body: str, ak: str, sk: str, ts: str
) -> str:
    lines = [method, path]
    if query:
        lines.append("&".join(sorted(f"{model_enc(k)}={model_enc(v)}" for k, v in query)))
    lines += ["host", f"host:{model_enc(host)}"]
    canonical = "\n".join(lines) + "\n" + (model_enc(body) if body else "")
    prefix = f"auth-v2/{ak}/{ts}/host"
    key = hmac.new(sk.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    return prefix + "/" + hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


@settings(max_examples=300)
@given(
    path=st.lists(st.text(min_size=1), min_size=1, max_size=4).map(
        lambda parts: "/" + "/".join(model_enc(p) for p in parts)
    ),
    query=st.lists(st.tuples(st.text(), st.text()), max_size=4),
    body=st.text(),
    sk=st.text(min_size=1),
)
def test_signer_agrees_with_an_independent_model(path: str, query: list[tuple[str, str]], body: str, sk: str) -> None:
    ts = "2026-11-23T00:00:00Z"
    ours = sign(
        method="POST", path=path, query=query, host="h:1", body=body, ak="ak", sk=sk, timestamp=ts
    ).authorization
    assert ours == model_authorization("POST", path, query, "h:1", body, "ak", sk, ts)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


envelopes = st.fixed_dictionaries(
    {},
    optional={
        "resultCode": st.sampled_from(["0200000", "0200001", "0200033", 200000, None]),
        "returnCode": st.sampled_from(["0200000", "0200007"]),
        "data": json_values,
    },
)


@settings(max_examples=300)
@given(
    body=st.one_of(json_values.map(json_bytes), envelopes.map(json_bytes), st.binary(max_size=64)),
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 404, 429, 500, 502, 503]),
)
def test_envelope_returns_data_or_raises_a_client_error(body: bytes, status: int) -> None:
    import datetime as dt

    for endpoint in ENDPOINTS.values():
        try:
            data = decipher(endpoint, status, {"Retry-After": "x"}, body, dt.datetime.now(dt.timezone.utc))
        except ISalesError:
            continue
        assert isinstance(data, dict)
        assert 200 <= status < 300
