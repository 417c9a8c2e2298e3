"""Retry decisions, as pure functions and small state objects without I/O.

The rules encode what is safe for *this* API: reads are idempotent and retry on
transport failures, 429, 502, 503 and 504. Writes are not idempotent on the server (a
writeback can trigger the campaign's retry policy), so they retry only when the request
provably was not processed: the connection failed before sending, or the server said
429 / 503. Any other failure of a sent write is reported as outcome-unknown.

A server's ``Retry-After`` is honoured up to :attr:`RetryPolicy.max_retry_after`: within
it, the hint becomes the client's shared :class:`CoolDown`; above it (``inf`` included),
it is not a pause at all: a read falls back to its own backoff, a write gives up with
the server's error. The deadline bounds every wait a decision asks for.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

import attrs

from ._errors import (
    AuthenticationError,
    ConnectError,
    ConnectionLostError,
    HTTPStatusError,
    ReadTimeoutError,
    ResponseFormatError,
    TLSError,
)
from ._validation import check_int_range, check_number, field_check

__all__ = ["CoolDown", "Decision", "Failure", "RetryBudget", "RetryPolicy", "RetryState", "classify"]


class Failure(enum.Enum):
    """How an attempt failed, as far as retrying is concerned."""

    NOT_SENT = "not_sent"  # connect failure: the server never saw the request
    LOST = "lost"  # sent, then reset or timed out: fate unknown
    RATE_LIMITED = "429"
    UNAVAILABLE = "503"  # the server refused to process it
    BAD_GATEWAY = "502"
    GATEWAY_TIMEOUT = "504"
    SERVER_ERROR = "5xx"  # 500 and other 5xx: may have been processed
    BAD_BODY = "bad_body"  # 2xx that is not the envelope: may have been processed
    FINAL = "final"  # 401, other 4xx, business errors: retrying cannot help


_STATUS_FAILURES = {
    429: Failure.RATE_LIMITED,
    503: Failure.UNAVAILABLE,
    502: Failure.BAD_GATEWAY,
    504: Failure.GATEWAY_TIMEOUT,
}
_READ_RETRYABLE = frozenset(
    {
        Failure.NOT_SENT,
        Failure.LOST,
        Failure.RATE_LIMITED,
        Failure.UNAVAILABLE,
        Failure.BAD_GATEWAY,
        Failure.GATEWAY_TIMEOUT,
    }
)
_WRITE_RETRYABLE = frozenset({Failure.NOT_SENT, Failure.RATE_LIMITED, Failure.UNAVAILABLE})
# A write that failed like this may have been applied: report it unknown, never resend.
_WRITE_UNKNOWN = frozenset(
    {Failure.LOST, Failure.BAD_GATEWAY, Failure.GATEWAY_TIMEOUT, Failure.SERVER_ERROR, Failure.BAD_BODY}
)


def classify(error: BaseException) -> Failure:
    """Map a client error to the :class:`Failure` that decides its retry."""
    if isinstance(error, TLSError):
        return Failure.FINAL
    if isinstance(error, ConnectError):
        return Failure.NOT_SENT
    if isinstance(error, (ConnectionLostError, ReadTimeoutError)):
        return Failure.LOST
    if isinstance(error, AuthenticationError):
        return Failure.FINAL
    if isinstance(error, HTTPStatusError):
        if error.status in _STATUS_FAILURES:
            return _STATUS_FAILURES[error.status]
        return Failure.SERVER_ERROR if error.status >= 500 else Failure.FINAL
    if isinstance(error, ResponseFormatError):
        return Failure.BAD_BODY
    return Failure.FINAL


@attrs.frozen
class Decision:
    """``retry`` with ``delay`` seconds, or give up; ``unknown`` marks a write of unknown fate;
    ``cool_down`` is the pause the failure's ``Retry-After`` set for the whole client (0: none)."""

    retry: bool
    delay: float = 0.0
    unknown: bool = False
    reason: str = ""
    cool_down: float = 0.0


@attrs.frozen
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter, inside a deadline.

    Args:
        attempts: total attempts per call, the first included (1 disables retrying).
        initial_delay: backoff cap of the first retry, doubled for each further one.
        max_delay: largest backoff cap.
        deadline: seconds from a call's start within which the call ends: no retry,
            shared cool-down or route spacing wait runs past it (the call gives up
            instead), and an attempt still waiting for a limiter slot or in flight when
            it passes is ended (a sent write as outcome-unknown, never resent);
            ``None`` for no limit.
        max_retry_after: the longest ``Retry-After`` honoured (60 s by default). Within
            it, the hint pauses every request of the client; above it, and for ``inf``,
            it is not taken as a pause: a read retries on its own backoff, a write gives
            up with the server's error (a :class:`~isales_async.RateLimitedError`
            carrying ``retry_after``).
    """

    attempts: int = attrs.field(default=4, validator=field_check(check_int_range, low=1))
    initial_delay: float = attrs.field(default=0.2, validator=field_check(check_number))
    max_delay: float = attrs.field(default=10.0, validator=field_check(check_number))
    deadline: float | None = attrs.field(default=60.0, validator=field_check(check_number, optional=True))
    max_retry_after: float = attrs.field(default=60.0, validator=field_check(check_number))

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in ``[0, min(max_delay, initial_delay * 2**(n-1))]``."""
        cap = min(self.max_delay, self.initial_delay * 2.0 ** max(0, retry_number - 1))
        return cap * rand()

    def decide(
        self,
        *,
        attempt: int,
        failure: Failure,
        write: bool,
        elapsed: float,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> Decision:
        """Whether attempt number ``attempt`` (1-based), failed as ``failure``, is tried again."""
        unknown = write and failure in _WRITE_UNKNOWN
        retryable = _WRITE_RETRYABLE if write else _READ_RETRYABLE
        if failure not in retryable:
            return Decision(
                False, unknown=unknown, reason=f"{failure.value} is not retried for a {'write' if write else 'read'}"
            )
        if attempt >= self.attempts:
            return Decision(False, reason=f"{attempt} attempts made")
        delay = self.backoff(attempt, rand)
        if retry_after is not None and retry_after >= 0:  # NaN and negative hints say nothing
            if retry_after <= self.max_retry_after:
                delay = max(delay, retry_after)
            elif write:
                return Decision(False, reason=f"Retry-After {retry_after:g}s exceeds the {self.max_retry_after:g}s cap")
        if self.deadline is not None and elapsed + delay > self.deadline:
            return Decision(False, reason=f"the {self.deadline:g}s deadline leaves no room for a {delay:.2f}s wait")
        return Decision(True, delay=delay, reason=failure.value)


@attrs.define
class CoolDown:
    """The client's shared pause after a ``Retry-After``: no attempt starts before it ends.

    A small state machine fed the clock's readings (no I/O): :meth:`pause` when a server
    asks for one, :meth:`wait` to learn how long an attempt must still wait. A hint that is
    absent, not above 0 or above ``cap`` is not taken, so a pause never outlives the cap.
    """

    until: float = 0.0
    #: The hint that set ``until``: ``until - now`` can exceed it by a rounding error.
    length: float = 0.0
    #: Told the length of each pause taken (shared limits publish it to the tenant's other processes).
    listener: Callable[[float], None] | None = attrs.field(default=None, eq=False, repr=False)

    def pause(self, now: float, seconds: float | None, cap: float) -> bool:
        """Pause until ``now + seconds`` (unless already paused longer); whether it was taken."""
        if seconds is None or not 0 < seconds <= cap:
            return False
        if self.adopt(now, seconds) and self.listener is not None:
            self.listener(seconds)
        return True

    def adopt(self, now: float, seconds: float) -> bool:
        """Pause until ``now + seconds`` unless already paused longer (a pause another process
        learned, already capped there); whether it lengthened the pause."""
        if now + seconds <= self.until:
            return False
        self.until, self.length = now + seconds, seconds
        return True

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until the pause ends; 0 when there is none."""
        return max(0.0, min(self.length, self.until - now))


@attrs.define
class RetryBudget:
    """A token bucket shared by every call of a client, so an outage cannot cause a retry storm.

    Each first attempt deposits ``ratio`` tokens (up to ``capacity``); each retry costs one.
    With the defaults, at most one retry per five requests is sustained once the initial
    ``capacity`` tokens are spent.
    """

    ratio: float = attrs.field(default=0.2, validator=field_check(check_number))
    capacity: float = attrs.field(default=20.0, validator=field_check(check_number))
    tokens: float = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = self.capacity

    def deposit(self) -> None:
        """Credit one first attempt."""
        if self.tokens < self.capacity:  # full, as it mostly is: no write (each runs the validators)
            self.tokens = min(self.capacity, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        """Take a token for one retry; ``False`` when the budget is spent."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RetryState:
    """What a client's calls share about retrying: the budget and the cool-down; pure.

    A small state machine fed the clock's readings, so the whole retry decision of a
    failed attempt is made here, synchronously testable: the session only reports a
    first attempt (:meth:`first_attempt`), a failure (:meth:`after_failure`), and asks how
    long an attempt must still wait (:meth:`cool_down_wait`).
    """

    def __init__(self, budget: RetryBudget | None = None, cool_down: CoolDown | None = None) -> None:
        self.budget = budget if budget is not None else RetryBudget()
        self.cool_down = cool_down if cool_down is not None else CoolDown()

    def first_attempt(self) -> None:
        """A call begins: credit the budget."""
        self.budget.deposit()

    def cool_down_wait(self, now: float) -> float:
        """Seconds from ``now`` before any attempt of the client may start."""
        return self.cool_down.wait(now)

    def after_failure(
        self,
        policy: RetryPolicy,
        error: BaseException,
        *,
        attempt: int,
        write: bool,
        now: float,
        elapsed: float,
        rand: Callable[[], float] = random.random,
    ) -> Decision:
        """Whether attempt ``attempt`` of a call, failed with ``error``, is tried again.

        A 429 or 503 with a ``Retry-After`` within the policy's cap pauses every call of
        the client (the cool-down); a retry the policy allows also needs a token of the
        budget, and is refused when it is spent.
        """
        failure = classify(error)
        retry_after = getattr(error, "retry_after", None)
        paused = failure in (Failure.RATE_LIMITED, Failure.UNAVAILABLE) and self.cool_down.pause(
            now, retry_after, policy.max_retry_after
        )
        decision = policy.decide(
            attempt=attempt, failure=failure, write=write, elapsed=elapsed, retry_after=retry_after, rand=rand
        )
        if paused and retry_after is not None:
            decision = attrs.evolve(decision, cool_down=retry_after)
        if decision.retry and not self.budget.withdraw():
            return attrs.evolve(decision, retry=False, reason="the client's retry budget is spent")
        return decision
