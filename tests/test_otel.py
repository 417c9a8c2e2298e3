"""OpenTelemetry from the client's hooks: spans and metrics, read back from the SDK's in-memory
exporter and reader, against the fake server through its memory transport and a FakeClock."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from isales_async import (
    CallFinished,
    CallStarted,
    CoolDownStarted,
    ISalesClient,
    NotFoundError,
    OutcomeUnknownError,
    Progress,
    RequestSent,
    ResponseReceived,
    RetryPolicy,
    ServerError,
    Timeouts,
    Writeback,
    log_event,
)
from isales_async._session import Session
from isales_async.otel import Telemetry
from isales_async.testing import DEFAULT_SK, FakeClock, FakeISales, Fault

from .conftest import MakeClient
from .test_batch import good

OBS = "queryOBSResultCode"
WB = "callBusiResult"


class Recorded:
    """A Telemetry hook wired to in-memory SDK providers, with readers for what it recorded."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.hook = Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, clock=clock)

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """The data points of metric ``name``: (attributes, value) for a counter, (attributes, count) for a histogram."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found.append((dict(point.attributes or {}), getattr(point, "count", value)))
        return found


@pytest.fixture
def otel() -> Iterator[Recorded]:
    recorded = Recorded(FakeClock())
    yield recorded
    recorded.tracer_provider.shutdown()
    recorded.meter_provider.shutdown()


def traced(make_client: MakeClient, otel: Recorded, **options: Any) -> ISalesClient:
    return make_client(clock=otel.clock, hooks=[log_event, otel.hook], **options)


def attempts_of(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "isales.attempt"]


async def test_a_call_with_two_retries_is_one_span_with_three_attempt_events(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    server.inject(Fault.status_code(503, endpoint=OBS, times=2))
    async with traced(make_client, otel) as client:
        page = await client.obs_result_codes.page(page_num=2, page_size=10)
    assert len(page.items) == 10
    (span,) = otel.spans()
    assert span.name == "isales.queryOBSResultCode" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "isales.endpoint": OBS,
        "http.request.method": "GET",
        "server.address": "isales.test",
        "server.port": 443,
        "url.template": "/rest/isales/v1/openapi/campaigns/1/queryOBSResultCode",
        "url.path": "/rest/isales/v1/openapi/campaigns/1/queryOBSResultCode",
        "isales.attempts": 3,
        "isales.retries": 2,
        "http.response.status_code": 200,
        "isales.result_code": "0200000",
    }
    attempts = attempts_of(span)
    assert [(a["isales.attempt"], a["http.response.status_code"]) for a in attempts] == [(1, 503), (2, 503), (3, 200)]
    assert [a.get("isales.retry.reason") for a in attempts] == ["503", "503", None]
    assert all(a["isales.retry.delay"] >= 0 for a in attempts[:2]) and "isales.retry.delay" not in attempts[2]
    assert [a.get("error.type") for a in attempts] == ["ServerError", "ServerError", None]
    assert all(a["isales.attempt.elapsed"] >= 0 for a in attempts)

    durations = {(p["http.response.status_code"], p.get("error.type")): n for p, n in otel.points(DURATION)}
    assert durations == {(503, "ServerError"): 2, (200, None): 1}
    assert otel.points("isales.client.retries") == [
        (
            {
                "isales.endpoint": OBS,
                "http.request.method": "GET",
                "server.address": "isales.test",
                "isales.retry.reason": "503",
            },
            2,
        )
    ]


DURATION = "isales.client.request.duration"


async def test_a_failed_call_has_status_error_and_its_error_type(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    server.inject(Fault.status_code(500, endpoint=OBS))
    async with traced(make_client, otel) as client:
        with pytest.raises(NotFoundError):
            await client.call_results.get("no-such-call")
        with pytest.raises(ServerError):
            await client.obs_result_codes.page()
    not_found, server_error = otel.spans()
    assert not_found.status.status_code is StatusCode.ERROR and not_found.status.description == "NotFoundError"
    assert not_found.attributes is not None and server_error.attributes is not None
    assert not_found.attributes["error.type"] == "NotFoundError"
    assert not_found.attributes["isales.result_code"] == "0200007"  # the API's code, from the envelope
    assert not_found.attributes["url.template"].endswith("/callresultdetail/{callId}")
    assert not_found.attributes["url.path"].endswith("/callresultdetail/no-such-call")
    assert server_error.status.status_code is StatusCode.ERROR
    assert server_error.attributes["error.type"] == "ServerError"
    assert server_error.attributes["isales.give_up.reason"]  # 500 is not retried: why, in words
    assert "isales.result_code" not in server_error.attributes  # a 500 carries no envelope
    assert server_error.attributes["isales.attempts"] == 1 and server_error.attributes["isales.retries"] == 0
    assert [a["http.response.status_code"] for a in attempts_of(server_error)] == [500]


async def test_a_write_timed_out_after_sending_is_outcome_unknown(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    async with traced(make_client, otel, timeouts=Timeouts(connect=1.0, read=0.05, total=2.0)) as client:
        await client.business_results.write_back(1, "B01")
        server.inject(Fault.hang(endpoint=WB))
        with pytest.raises(OutcomeUnknownError):
            await client.business_results.write_back(2, "B01")
    applied, timed_out = otel.spans()
    assert applied.attributes is not None and applied.attributes["isales.outcome_unknown"] is False
    assert timed_out.attributes is not None
    assert timed_out.attributes["isales.outcome_unknown"] is True
    assert timed_out.attributes["error.type"] == "OutcomeUnknownError"
    assert timed_out.attributes["http.request.method"] == "POST"
    (attempt,) = attempts_of(timed_out)
    assert attempt["error.type"] == "ReadTimeoutError" and "http.response.status_code" not in attempt
    timeouts = [(p, n) for p, n in otel.points(DURATION) if p.get("error.type") == "ReadTimeoutError"]
    assert [n for _, n in timeouts] == [1] and "http.response.status_code" not in timeouts[0][0]


async def test_a_429_cool_down_counts_and_shows_on_the_span(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    server.inject(Fault.status_code(429, retry_after="2", endpoint=OBS), Fault.status_code(503, endpoint=OBS))
    async with traced(make_client, otel) as client:
        await client.obs_result_codes.page()
    (span,) = otel.spans()
    pauses = [dict(e.attributes or {}) for e in span.events if e.name == "isales.cool_down"]
    assert pauses == [{"http.response.status_code": 429, "isales.cool_down.seconds": 2.0}]
    (point,) = otel.points("isales.client.cool_downs")
    assert point == (
        {
            "isales.endpoint": OBS,
            "http.request.method": "GET",
            "server.address": "isales.test",
            "http.response.status_code": 429,
        },
        1,
    )  # the 503 had no Retry-After: a retry, not a pause of the client
    assert sum(n for _, n in otel.points("isales.client.retries")) == 2


async def test_a_batch_counts_its_outcomes_by_kind(
    make_client: MakeClient, server: FakeISales, otel: Recorded, tmp_path: Path
) -> None:
    journal = tmp_path / "otel.journal"
    seen: list[Progress] = []
    server.inject(Fault.reset(after=False, endpoint=WB))  # the first write: sent, fate unknown
    records = [*good(4), Writeback(1, "B02")]  # dataId 1 twice: the second is refused before sending
    async with traced(make_client, otel) as client:
        first = await client.business_results.write_back_many(
            records, concurrency=1, journal=journal, on_progress=otel.hook.batch_progress(then=seen.append)
        )
        second = await client.business_results.write_back_many(
            good(4), journal=journal, on_progress=otel.hook.batch_progress()
        )
    assert (len(first.succeeded), len(first.unknown), len(first.failed)) == (3, 1, 1)
    assert sum(second.skipped.values()) == 4
    assert seen[-1].done == 5  # the progress still reaches the callback it wraps
    by_kind = {p["isales.outcome"]: n for p, n in otel.points("isales.batch.outcomes")}
    assert by_kind == {"succeeded": 3, "unknown": 1, "failed": 1, "skipped": 4}


async def test_the_span_is_a_child_of_the_callers_span_and_a_cancelled_call_ends_it(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    tracer = otel.tracer_provider.get_tracer("the-app")
    arrived = asyncio.Event()
    async with traced(make_client, otel) as client:
        with tracer.start_as_current_span("handle-request") as parent:
            await client.obs_result_codes.page()
            server.inject(Fault.hang(endpoint=OBS))
            server.on_request.append(lambda request: arrived.set())
            call = asyncio.ensure_future(client.obs_result_codes.page())
            with anyio.fail_after(10):
                await arrived.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        server.release()
    answered, cancelled, app = otel.spans()
    assert app is not None and app.context is not None and app.name == "handle-request"
    assert answered.parent is not None and answered.parent.span_id == parent.get_span_context().span_id
    assert cancelled.parent is not None and cancelled.parent.span_id == parent.get_span_context().span_id
    assert cancelled.attributes is not None and cancelled.attributes["error.type"] == "CancelledError"


async def test_concurrent_calls_each_get_their_own_span(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    server.inject(Fault.status_code(503, endpoint=WB, times=3))
    async with traced(make_client, otel) as client:
        report = await client.business_results.write_back_many(good(20), concurrency=5)
        pages = await asyncio.gather(*(client.obs_result_codes.page(page_num=n, page_size=5) for n in range(1, 5)))
    assert len(report.succeeded) == 20 and [len(p.items) for p in pages] == [5, 5, 5, 5]
    writes = [s for s in otel.spans() if s.name == "isales.callBusiResult"]
    paths = sorted(int(str((s.attributes or {})["url.path"]).rsplit("/", 1)[1]) for s in writes)
    assert paths == list(range(1, 21))  # one span per record, none mixed up with another
    retried = [s for s in writes if (s.attributes or {})["isales.retries"]]
    assert sum(len(attempts_of(s)) for s in writes) == 23 and sum(len(attempts_of(s)) for s in retried) == 3 + len(
        retried
    )
    assert all(len(attempts_of(s)) == (s.attributes or {})["isales.attempts"] for s in otel.spans())
    assert len([s for s in otel.spans() if s.name == "isales.queryOBSResultCode"]) == 4


async def test_no_secret_or_query_value_reaches_an_attribute(
    make_client: MakeClient, server: FakeISales, otel: Recorded
) -> None:
    server.inject(Fault.status_code(503, endpoint=OBS), Fault.status_code(401, endpoint=WB))
    async with traced(make_client, otel) as client:
        await client.obs_result_codes.page(page_num=3, page_size=17)
        with pytest.raises(Exception, match="401"):
            await client.business_results.write_back(4, "B01")
    values = []
    for span in otel.spans():
        values.extend(str(v) for v in (span.attributes or {}).values())
        values.extend(str(v) for event in span.events for v in (event.attributes or {}).values())
        values.append(str(span.status.description))
    text = " ".join(values)
    assert DEFAULT_SK not in text and "auth-v2" not in text and "Authorization" not in text
    assert "?" not in text and "pageSize" not in text and "17" not in text.split()


def test_without_the_extra_the_package_imports_and_the_otel_module_names_the_extra() -> None:
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"  # as if opentelemetry-api were not installed
        "import isales_async, isales_async.testing, isales_async.receivers\n"
        "try:\n"
        "    import isales_async.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "pip install 'isales-async[otel]'" in run.stdout


async def test_the_hot_path_builds_no_call_event_without_a_custom_hook(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    emitted: list[object] = []
    original = Session._emit

    def recording(self: Session, event: Any) -> None:
        emitted.append(event)
        original(self, event)

    monkeypatch.setattr(Session, "_emit", recording)
    async with make_client() as client:  # the default hooks: log_event alone
        await client.obs_result_codes.page()
        assert emitted == []  # nothing built at all while no one listens
        caplog.set_level(logging.DEBUG, logger="isales_async")
        await client.obs_result_codes.page()
        assert [type(e) for e in emitted] == [RequestSent, ResponseReceived]  # DEBUG logging: the old events only
    async with make_client(hooks=[log_event, lambda event: None]) as client:
        await client.obs_result_codes.page()
    assert [type(e) for e in emitted[2:]] == [CallStarted, RequestSent, ResponseReceived, CallFinished]
    assert "queryOBSResultCode" in caplog.text and "finished after 1 attempts" in caplog.text


def test_log_event_logs_the_call_and_cool_down_events(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="isales_async")
    log_event(CallStarted(WB, "POST", "/p/callBusiResult/1", "/p/callBusiResult/{dataId}", "h", 443, True))
    log_event(CoolDownStarted(WB, "/p/callBusiResult/1", 429, 2.5))
    log_event(CallFinished(WB, "/p/callBusiResult/1", 2, None, True, "OutcomeUnknownError"))
    log_event(CallFinished(WB, "/p/callBusiResult/1", 1, "0200000", False, None))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.INFO, logging.DEBUG, logging.DEBUG]
    assert "pauses for 2.50s" in caplog.records[1].getMessage()
    assert caplog.records[2].getMessage().endswith("after 2 attempts: OutcomeUnknownError")
    assert caplog.records[3].getMessage().endswith("after 1 attempts: resultCode 0200000")


def test_the_retry_decision_carries_the_cool_down_it_set() -> None:
    from isales_async._errors import RateLimitedError
    from isales_async._retry import RetryState

    state, policy = RetryState(), RetryPolicy(max_retry_after=5)

    def decide(retry_after: float | None) -> float:
        error = RateLimitedError("429", status=429, endpoint=OBS, retry_after=retry_after)
        return state.after_failure(policy, error, attempt=1, write=False, now=0.0, elapsed=0.0).cool_down

    assert (decide(2.0), decide(5.0), decide(None), decide(5.5), decide(0.0)) == (2.0, 5.0, 0.0, 0.0, 0.0)
