"""Instrumentation: frozen event objects handed to hooks, and the logging hook.

A hook is any callable taking one event. Events carry the endpoint, the path and the
outcome, never the ``Authorization`` value, the SK or the query: a hook cannot leak what
it is never given.

A call's events arrive in order, synchronously, in the task that made the call:
:class:`CallStarted`, then for each attempt :class:`RequestSent` and
:class:`ResponseReceived` (none when the attempt failed before an answer), then
:class:`RetryScheduled` (with :class:`CoolDownStarted` first when the server's
``Retry-After`` pauses the client) or, for the last one, :class:`GaveUp` on failure, and
:class:`CallFinished`. The two call events are built only when a custom hook (anything
but :func:`log_event` alone) listens, the two request events also when DEBUG logging is
on, so the hot path pays nothing for them; retries, cool-downs and give-ups are always
emitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

__all__ = [
    "CallFinished",
    "CallStarted",
    "CoolDownStarted",
    "Event",
    "GaveUp",
    "Hook",
    "RequestSent",
    "ResponseReceived",
    "RetryScheduled",
    "log_event",
]

logger = logging.getLogger("isales_async")
# A library stays silent until the application configures logging.
logger.addHandler(logging.NullHandler())


@attrs.frozen
class CallStarted:
    """A call begins (its arguments checked): one per call, however many attempts follow.

    ``route`` is the path template (``.../campaigns/1/callBusiResult/{dataId}``), the same
    for every call of the endpoint; ``server_address`` and ``server_port`` are those of
    the base URL; ``write`` marks an endpoint that changes server state.
    """

    endpoint: str
    method: str
    path: str
    route: str
    server_address: str
    server_port: int
    write: bool


@attrs.frozen
class RequestSent:
    """An attempt is about to go on the wire (limiter acquired, freshly signed)."""

    endpoint: str
    method: str
    path: str
    attempt: int


@attrs.frozen
class ResponseReceived:
    """An attempt got an HTTP response (whatever its status)."""

    endpoint: str
    path: str
    status: int
    attempt: int
    elapsed: float


@attrs.frozen
class RetryScheduled:
    """An attempt failed and another follows after ``delay`` seconds."""

    endpoint: str
    path: str
    attempt: int
    delay: float
    reason: str
    error: str


@attrs.frozen
class CoolDownStarted:
    """A 429 or 503 asked, in its ``Retry-After``, for a pause the client honours: no
    attempt of the client starts in the next ``seconds``."""

    endpoint: str
    path: str
    status: int
    seconds: float


@attrs.frozen
class GaveUp:
    """A call failed for good after ``attempts`` attempts."""

    endpoint: str
    path: str
    attempts: int
    reason: str
    error: str


@attrs.frozen
class CallFinished:
    """A call ended, one way or the other; the last event of its call.

    ``attempts`` counts the attempts that went to the transport; ``result_code`` is the
    envelope's code when the server answered one (``0200000`` on success), else ``None``;
    ``outcome_unknown`` marks a write whose fate is unknown; ``error`` names the type of
    the exception the call raised (``CancelledError`` when its caller cancelled it), or
    is ``None`` on success.
    """

    endpoint: str
    path: str
    attempts: int
    result_code: str | None
    outcome_unknown: bool
    error: str | None


Event = CallStarted | RequestSent | ResponseReceived | RetryScheduled | CoolDownStarted | GaveUp | CallFinished
Hook = Callable[[Event], None]


def log_event(event: Event) -> None:
    """The default hook: one standard-library log record per event."""
    if isinstance(event, CallStarted):
        logger.debug("%s %s %s started", event.endpoint, event.method, event.path)
    elif isinstance(event, CallFinished):
        logger.debug(
            "%s %s finished after %d attempts: %s",
            event.endpoint,
            event.path,
            event.attempts,
            event.error or f"resultCode {event.result_code}",
        )
    elif isinstance(event, CoolDownStarted):
        logger.info(
            "%s %s got HTTP %d: every request of the client pauses for %.2fs",
            event.endpoint,
            event.path,
            event.status,
            event.seconds,
        )
    elif isinstance(event, RequestSent):
        logger.debug("%s %s %s attempt %d", event.endpoint, event.method, event.path, event.attempt)
    elif isinstance(event, ResponseReceived):
        logger.debug("%s %s -> %d in %.3fs", event.endpoint, event.path, event.status, event.elapsed)
    elif isinstance(event, RetryScheduled):
        logger.info(
            "%s %s attempt %d failed (%s: %s); retrying in %.2fs",
            event.endpoint,
            event.path,
            event.attempt,
            event.reason,
            event.error,
            event.delay,
        )
    else:
        # A first-attempt failure (a business error, a 401) is the caller's to report.
        level = logging.WARNING if event.attempts > 1 else logging.DEBUG
        logger.log(
            level,
            "%s %s gave up after %d attempts (%s): %s",
            event.endpoint,
            event.path,
            event.attempts,
            event.reason,
            event.error,
        )
