"""Adaptive writeback concurrency: the AIMD decisions, pure (no I/O, no waiting, no clock).

A batch run with ``concurrency="auto"`` asks :class:`AimdLimit` how many records may be in
flight. It starts low (:data:`START_LIMIT`) and probes upwards additively, one more record
per window of ``limit`` successful completions (about one step per round trip, as TCP's
congestion avoidance and botocore's adaptive mode do for their rates) while the whole
limit is in use, and halves
(multiplicatively) on a sign that the server is at its capacity:

- a 429 or a 503, including one the session retried: the batch sees it as the session
  sending the same record again (for a write, the session resends only after a 429, a
  503 or a connection that failed before sending) or as the record's final error;
- a latency jump: the smoothed latency of successful attempts (an exponentially weighted
  mean) above :attr:`AimdSettings.latency_factor` times its baseline. The baseline follows
  a falling latency at once and a rising one slowly, so a server that has become slower
  for good is, after some samples, the new normal rather than a halving per round trip.

One congestion event halves the limit once: a signal from an attempt sent before the last
decrease (while the old, higher limit was in force) is ignored, as TCP reduces its window
once per round trip. The limit stays within ``1 .. max_limit``.

The caller feeds it events with timestamps of its clock: :meth:`AimdLimit.sent` as an
attempt goes on the wire (a :class:`Ticket` comes back), then :meth:`~AimdLimit.completed`
or :meth:`~AimdLimit.throttled` for that ticket.
"""

from __future__ import annotations

from collections import deque

import attrs

from .._validation import check_int_range

__all__ = [
    "HISTORY_SIZE",
    "MAX_CONCURRENCY_BOUND",
    "START_LIMIT",
    "AimdLimit",
    "AimdSettings",
    "ConcurrencyReport",
    "LimitChange",
    "Ticket",
]

#: The limit an adaptive batch starts with (lowered to ``max_limit`` when that is lower).
START_LIMIT = 2
#: The largest ``max_concurrency`` a batch accepts: each slot is a worker task.
MAX_CONCURRENCY_BOUND = 1000
#: How many of the latest limit changes a report keeps (the counts cover them all).
HISTORY_SIZE = 64

#: Why a limit changed, as :attr:`LimitChange.reason` says it.
START, GROW, THROTTLED, LATENCY = "start", "grow", "429/503", "latency"


@attrs.frozen
class AimdSettings:
    """The constants of the adaptation; the defaults suit the vendor's writeback route.

    Args:
        latency_factor: a smoothed latency above this multiple of the baseline is a jump.
        smoothing: weight of a new sample in the smoothed latency (0 < smoothing <= 1).
        baseline_drift: how fast the baseline follows a latency above it, per sample.
        latency_floor: seconds; a baseline below it counts as this, so that the jitter of
            a very fast server (or of the event loop) is no jump.
        min_samples: latency samples needed before a jump is judged.
    """

    latency_factor: float = 2.0
    smoothing: float = 0.3
    baseline_drift: float = 0.05
    latency_floor: float = 0.01
    min_samples: int = 5


@attrs.frozen
class Ticket:
    """One attempt on the wire: the limit's ``epoch`` (decreases so far) and the limit
    when it was sent, and when."""

    epoch: int
    sent_at: float
    limit: int


@attrs.frozen
class LimitChange:
    """The limit became ``limit`` ``at`` seconds into the batch, for ``reason``
    (``"start"``, ``"grow"``, ``"429/503"`` or ``"latency"``)."""

    at: float
    limit: int
    reason: str

    def __str__(self) -> str:
        return f"{self.limit}@{self.at:.1f}s({self.reason})"


@attrs.frozen
class ConcurrencyReport:
    """The concurrency a batch ran at, in :attr:`BatchReport.concurrency <isales_async.BatchReport.concurrency>`.

    ``mode`` is ``"auto"`` or ``"fixed"``. ``final`` is the limit at the end and ``peak`` the
    highest it reached; ``settled`` is the limit it ran at once it had met the server's
    capacity: the mean of the limits its successes were sent under since the first
    signal to decrease (the final limit when nothing ever signalled one). ``increases`` and ``decreases`` count every
    change; ``history`` holds the latest :data:`HISTORY_SIZE` of them, oldest first.
    A fixed concurrency is its own final, peak and settled value, with no history.
    """

    mode: str
    final: int
    peak: int
    settled: float
    increases: int = 0
    decreases: int = 0
    history: tuple[LimitChange, ...] = ()

    @classmethod
    def fixed(cls, concurrency: int) -> ConcurrencyReport:
        return cls("fixed", concurrency, concurrency, float(concurrency))

    def summary(self) -> str:
        if self.mode == "fixed":
            return f"concurrency {self.final}"
        return (
            f"concurrency auto: settled at {self.settled:.1f} (final {self.final}, peak {self.peak}; "
            f"{self.increases} up, {self.decreases} down)"
        )


class AimdLimit:
    """The adaptive limit of one batch: additive increase, multiplicative decrease.

    Times are seconds of the batch's clock; ``now`` given to the constructor is the start.
    """

    def __init__(self, max_limit: int, *, now: float = 0.0, settings: AimdSettings | None = None) -> None:
        self.max_limit = check_int_range("max_concurrency", max_limit, 1, MAX_CONCURRENCY_BOUND)
        self.settings = settings or AimdSettings()
        self.limit = min(START_LIMIT, max_limit)
        self.peak = self.limit
        self.epoch = 0  # decreases so far: a ticket of an earlier epoch cannot decrease again
        self.started = now
        self.successes = 0  # towards the next increase
        self.used = 0  # the most attempts on the wire since the limit last changed
        self.samples = 0
        self.smoothed: float | None = None
        self.baseline: float | None = None
        self.increases = self.decreases = 0
        self.history: deque[LimitChange] = deque([LimitChange(0.0, self.limit, START)], maxlen=HISTORY_SIZE)
        self._settled_sum = self._settled_count = 0  # the limits of the successes since the first decrease

    # -- events --------------------------------------------------------------------------------

    def sent(self, now: float, in_flight: int | None = None) -> Ticket:
        """An attempt goes on the wire at ``now``, making ``in_flight`` on the wire (``None``: the limit).

        A window of successes grows the limit only when, since the limit last changed,
        some attempt found the whole limit in use: a limit that the input, the client's
        own limits or records waiting for a retry keep from being used does not grow
        untested (TCP's congestion window validation, RFC 7661).
        """
        self.used = max(self.used, self.limit if in_flight is None else in_flight)
        return Ticket(self.epoch, now, self.limit)

    def completed(self, ticket: Ticket, now: float) -> bool:
        """The attempt of ``ticket`` succeeded at ``now``; whether the limit changed."""
        if self._latency_jumped(now - ticket.sent_at) and ticket.epoch == self.epoch:
            return self._decrease(now, LATENCY)
        if self.epoch:  # it has met the capacity
            self._settled_sum += ticket.limit
            self._settled_count += 1
        self.successes += 1
        if self.successes < self.limit:
            return False
        self.successes = 0
        if self.limit >= self.max_limit or self.used < self.limit:
            return False
        self._set(now, self.limit + 1, GROW)
        self.increases += 1
        self.peak = max(self.peak, self.limit)
        return True

    def throttled(self, ticket: Ticket, now: float) -> bool:
        """The attempt of ``ticket`` met a 429 or a 503 (known at ``now``); whether the limit changed."""
        if ticket.epoch != self.epoch:
            return False  # sent under the old limit: this congestion was already answered
        return self._decrease(now, THROTTLED)

    # -- the report ----------------------------------------------------------------------------

    def settled(self) -> float:
        """The mean limit the successes since the first decrease were sent under (the
        limit itself before one): the concurrency the batch ran at once it met the
        server's capacity, not counting the time a ``Retry-After`` pause kept it idle."""
        if not self._settled_count:
            return float(self.limit)
        return self._settled_sum / self._settled_count

    def report(self) -> ConcurrencyReport:
        return ConcurrencyReport(
            "auto",
            self.limit,
            self.peak,
            self.settled(),
            self.increases,
            self.decreases,
            tuple(self.history),
        )

    # -- inside --------------------------------------------------------------------------------

    def _latency_jumped(self, latency: float) -> bool:
        """Take one latency sample; whether the smoothed latency now stands well above its baseline."""
        s = self.settings
        smoothed = latency if self.smoothed is None else self.smoothed + s.smoothing * (latency - self.smoothed)
        self.smoothed = smoothed
        self.samples += 1
        if self.baseline is None or smoothed < self.baseline:
            self.baseline = smoothed
        else:
            self.baseline += s.baseline_drift * (smoothed - self.baseline)
        return self.samples >= s.min_samples and smoothed > s.latency_factor * max(self.baseline, s.latency_floor)

    def _decrease(self, now: float, reason: str) -> bool:
        self.epoch += 1
        self.successes = 0
        if self.limit == 1:
            return False
        self._set(now, max(1, self.limit // 2), reason)
        self.decreases += 1
        return True

    def _set(self, now: float, limit: int, reason: str) -> None:
        self.limit = limit
        self.used = 0
        self.history.append(LimitChange(now - self.started, limit, reason))
