"""Instrumentation: frozen event objects handed to hooks, and the logging hook.

A hook is any callable taking one event. Events carry the endpoint, the path and the
outcome, never the ``Authorization`` value or the SK: a hook cannot leak what it is
never given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

__all__ = ["Event", "GaveUp", "Hook", "RequestSent", "ResponseReceived", "RetryScheduled", "log_event"]

logger = logging.getLogger("isales_async")
# A library stays silent until the application configures logging.
logger.addHandler(logging.NullHandler())


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
class GaveUp:
    """A call failed for good after ``attempts`` attempts."""

    endpoint: str
    path: str
    attempts: int
    reason: str
    error: str


Event = RequestSent | ResponseReceived | RetryScheduled | GaveUp
Hook = Callable[[Event], None]


def log_event(event: Event) -> None:
    """The default hook: one standard-library log record per event."""
    if isinstance(event, RequestSent):
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
