"""OpenTelemetry for the client: a span per call and the client's metrics, from its hooks.

:class:`Telemetry` is a hook: pass it in ``hooks=[...]`` of
:class:`~isales_async.ISalesClient` (beside :func:`~isales_async.log_event` to keep the
log records, which a custom hook list replaces) and every call becomes one CLIENT span,
whatever its attempts, and feeds the metrics below. It is built on the events of
:mod:`isales_async` (:class:`~isales_async.CallStarted` to
:class:`~isales_async.CallFinished`), not on a second code path, and needs
``opentelemetry-api`` only (``pip install 'isales-async[otel]'``); what records and exports
is the application's OpenTelemetry SDK, taken from the given or the global providers.

The span of a call is named ``isales.<endpoint>`` (``isales.callBusiResult``), its parent
the caller's current span when the call starts. It carries ``isales.endpoint``,
``http.request.method``, ``server.address``, ``server.port``, ``url.template`` (the path
with its placeholders) and ``url.path`` (never the query), and when it ends
``isales.attempts`` (sent), ``isales.retries`` (scheduled), the last ``http.response.status_code``, the API's
``isales.result_code`` when the server answered one, ``isales.outcome_unknown`` on a
write, and on failure status ERROR with ``error.type`` (the exception's class name). Each
attempt that went to the server is a span event ``isales.attempt`` (its number, status,
elapsed seconds, error type, and the retry's reason and delay when one follows); a
``Retry-After`` pause of the client is an event ``isales.cool_down``.

Metrics (from the meter ``isales_async``):

- ``isales.client.request.duration`` (histogram, s): each attempt's time on the wire, by
  ``isales.endpoint``, ``http.request.method``, ``server.address``,
  ``http.response.status_code`` and ``error.type`` (when it failed);
- ``isales.client.retries`` (counter): retries scheduled, by endpoint and ``isales.retry.reason``;
- ``isales.client.cool_downs`` (counter): 429/503 pauses of the whole client, by endpoint
  and ``http.response.status_code``;
- ``isales.batch.outcomes`` (counter): a batch's records by ``isales.outcome``
  (``succeeded``, ``failed``, ``unknown``, ``not_sent``, ``skipped``), fed by the
  ``on_progress`` callable :meth:`Telemetry.batch_progress` returns.

Nothing secret reaches an attribute: the events carry neither the ``Authorization``
header nor the SK nor the query.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import attrs

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # the extra is missing: say which one, at the import that needs it
    raise ImportError(
        "isales_async.otel needs OpenTelemetry: install the extra with pip install 'isales-async[otel]'"
    ) from exc

from . import __version__
from ._clock import Clock, SystemClock
from ._hooks import (
    CallFinished,
    CallStarted,
    CoolDownStarted,
    Event,
    GaveUp,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
)
from .batch._report import Progress

__all__ = ["DURATION_BUCKETS", "Telemetry"]

_SCOPE = "isales_async"
#: The duration histogram's bucket boundaries (seconds): OpenTelemetry's HTTP client buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

Attributes = dict[str, AttributeValue]


@attrs.define
class _Call:
    """What the hook knows of one call in progress: its span and its current attempt."""

    span: trace.Span
    labels: Attributes  # the metric attributes every attempt of the call shares
    write: bool
    token: contextvars.Token[_Call | None] | None = None  # restores the variable when the call ends
    attempt: int = 0
    sent_at: float | None = None  # None: the current attempt did not go to the server
    status: int | None = None
    elapsed: float | None = None
    last_status: int | None = None
    retries: int = 0


class Telemetry:
    """A hook that turns a client's events into OpenTelemetry spans and metrics.

    Args:
        tracer_provider: where the spans go; the global one when ``None``.
        meter_provider: where the metrics go; the global one when ``None``.
        clock: times an attempt that ended without an answer (a timeout, a reset); give it
            the client's clock. An answered attempt is timed by the client itself.

    One instance may serve several clients. The events of a call arrive in the task
    that made it, so the hook follows each call in a context variable.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        self._duration = meter.create_histogram(
            "isales.client.request.duration",
            unit="s",
            description="The time of each attempt on the wire, from sending to its answer or failure.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._retries = meter.create_counter(
            "isales.client.retries", unit="{retry}", description="Retries scheduled after a failed attempt."
        )
        self._cool_downs = meter.create_counter(
            "isales.client.cool_downs",
            unit="{pause}",
            description="429/503 answers whose Retry-After paused every request of the client.",
        )
        self._outcomes = meter.create_counter(
            "isales.batch.outcomes", unit="{record}", description="The records of batches, by outcome."
        )
        self._clock = clock or SystemClock()
        self._current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("isales_call", default=None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __call__(self, event: Event) -> None:
        """Take one event of the client (this is the hook)."""
        if isinstance(event, CallStarted):
            self._started(event)
            return
        call = self._current.get()
        if call is None:  # a call that began before this hook listened
            return
        if isinstance(event, RequestSent):
            call.attempt, call.sent_at = event.attempt, self._clock.monotonic()
            call.status = call.elapsed = None
        elif isinstance(event, ResponseReceived):
            call.status = call.last_status = event.status
            call.elapsed = event.elapsed
        elif isinstance(event, RetryScheduled):
            self._retrying(call, event)
        elif isinstance(event, CoolDownStarted):
            self._cooling_down(call, event)
        elif isinstance(event, GaveUp):
            call.span.set_attribute("isales.give_up.reason", event.reason)
            self._end_attempt(call, _error_type(event.error), {})
        else:
            self._finished(call, event)

    def batch_progress(self, then: Callable[[Progress], None] | None = None) -> Callable[[Progress], None]:
        """An ``on_progress`` callable for one batch that counts its records by outcome.

        Pass it as ``write_back_many(..., on_progress=telemetry.batch_progress())``, a fresh
        one for each batch (it counts what each :class:`~isales_async.Progress` adds to the
        one before); ``then`` is called with every progress afterwards (a progress bar).
        """
        counted = Progress(0, 0, 0, 0, 0.0)

        def on_progress(progress: Progress) -> None:
            nonlocal counted
            for kind, added in _added(counted, progress).items():
                self._outcomes.add(added, {"isales.outcome": kind})
            counted = progress
            if then is not None:
                then(progress)

        return on_progress

    # -- the events of a call ------------------------------------------------------------

    def _started(self, event: CallStarted) -> None:
        labels: Attributes = {
            "isales.endpoint": event.endpoint,
            "http.request.method": event.method,
            "server.address": event.server_address,
        }
        attributes: Attributes = {
            **labels,
            "server.port": event.server_port,
            "url.template": event.route,
            "url.path": event.path,
        }
        span = self._tracer.start_span(
            f"isales.{event.endpoint}",
            context=otel_context.get_current(),
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        call = _Call(span, labels, event.write)
        call.token = self._current.set(call)

    def _retrying(self, call: _Call, event: RetryScheduled) -> None:
        call.retries += 1
        self._retries.add(1, {**call.labels, "isales.retry.reason": event.reason})
        self._end_attempt(
            call, _error_type(event.error), {"isales.retry.reason": event.reason, "isales.retry.delay": event.delay}
        )

    def _cooling_down(self, call: _Call, event: CoolDownStarted) -> None:
        self._cool_downs.add(1, {**call.labels, "http.response.status_code": event.status})
        call.span.add_event(
            "isales.cool_down", {"http.response.status_code": event.status, "isales.cool_down.seconds": event.seconds}
        )

    def _finished(self, call: _Call, event: CallFinished) -> None:
        self._end_attempt(call, event.error, {})
        span = call.span
        span.set_attribute("isales.attempts", event.attempts)
        span.set_attribute("isales.retries", call.retries)
        if call.last_status is not None:
            span.set_attribute("http.response.status_code", call.last_status)
        if event.result_code is not None:
            span.set_attribute("isales.result_code", event.result_code)
        if call.write:
            span.set_attribute("isales.outcome_unknown", event.outcome_unknown)
        if event.error is not None:
            span.set_attribute("error.type", event.error)
            span.set_status(trace.StatusCode.ERROR, event.error)
        span.end()
        if call.token is not None:
            self._current.reset(call.token)

    def _end_attempt(self, call: _Call, error: str | None, retry: Attributes) -> None:
        """Record the attempt in progress, once, if it went to the server."""
        if call.sent_at is None:
            return
        elapsed = call.elapsed if call.elapsed is not None else self._clock.monotonic() - call.sent_at
        outcome: Attributes = {}
        if call.status is not None:
            outcome["http.response.status_code"] = call.status
        if error is not None:
            outcome["error.type"] = error
        self._duration.record(elapsed, {**call.labels, **outcome})
        call.span.add_event(
            "isales.attempt", {"isales.attempt": call.attempt, "isales.attempt.elapsed": elapsed, **outcome, **retry}
        )
        call.sent_at = None


def _error_type(error_text: str) -> str:
    """The exception's class name from an event's ``"Type: message"`` error text."""
    return error_text.partition(":")[0]


def _added(before: Progress, now: Progress) -> dict[str, int]:
    """How many records of each outcome ``now`` adds to ``before`` (none of an outcome: left out)."""
    pairs = {
        "succeeded": (before.succeeded, now.succeeded),
        "failed": (before.failed, now.failed),
        "unknown": (before.unknown, now.unknown),
        "not_sent": (before.not_sent, now.not_sent),
        "skipped": (before.skipped, now.skipped),
    }
    return {kind: new - old for kind, (old, new) in pairs.items() if new > old}
