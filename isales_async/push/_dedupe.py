"""Where a :class:`~isales_async.PushReceiver` remembers the call IDs it has taken: the
:class:`DedupeStore` protocol, and the in-process store it uses by default.

Every store keeps one entry per call ID, in one of two states, each with an expiry:

- *claimed* by a token: a worker is running the callback on it. Others that find the
  claim answer 503, so the server pushes again later. The claim lasts as long as the
  callback may run (the receiver's ``callback_timeout`` and a grace), so the claim of a
  worker that died holding it frees itself.
- *processed*: the callback took it; re-pushes are dropped for ``dedupe_window`` seconds
  from then.

:meth:`~DedupeStore.claim` takes the absent or expired IDs and says, for each, what it
found (an ID the caller's token already holds counts as taken: a store client that resends
a claim whose answer was lost must not find its own claim held);
:meth:`~DedupeStore.processed` and :meth:`~DedupeStore.release` act only on the caller's
own claims (or on absent entries, for ``processed``), so a worker whose claim
expired and was taken by another never overwrites the other's. The same semantics in
every store keep one code path in the receiver: a store that must be shared between
processes (:class:`~isales_async.receivers.SqliteDedupeStore` on one host,
:class:`~isales_async.receivers.RedisDedupeStore` across hosts) only changes where the
entries live.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Sequence
from typing import Protocol

import attrs

from .._clock import Clock, SystemClock
from .._errors import ValidationError
from .._validation import check_clock

__all__ = ["Claim", "DedupeStore", "MemoryDedupeStore", "check_seconds"]


class Claim(enum.Enum):
    """What claiming one call ID found."""

    #: The caller holds the claim now: it runs the callback.
    TAKEN = "taken"
    #: Processed within the window: the re-push is dropped.
    PROCESSED = "processed"
    #: Another worker's claim, still running: answer 503, the server pushes again.
    HELD = "held"


class DedupeStore(Protocol):
    """The shared memory of :class:`~isales_async.PushReceiver`: which call IDs are being
    processed, by whom, and which were processed lately (see the module docstring).

    A method that cannot reach its store raises; the receiver then answers 503 and
    processes nothing (claim), or logs it and lets the claim expire (processed, release).
    """

    async def claim(self, call_ids: Sequence[str], token: str, ttl: float) -> list[Claim]:
        """Claim each absent (or expired) call ID for ``token`` for ``ttl`` seconds; return
        what was found for each, in order. A call ID ``token`` already holds is taken
        again, its claim renewed for ``ttl``: the receiver keeps the claims of a timed-out
        callback that has not ended this way."""
        ...

    async def processed(self, call_ids: Sequence[str], token: str, window: float) -> None:
        """Mark the call IDs ``token`` claimed (or that nobody holds) processed for ``window`` seconds."""
        ...

    async def release(self, call_ids: Sequence[str], token: str) -> None:
        """Forget the claims ``token`` still holds, so that a re-push is processed."""
        ...

    async def aclose(self) -> None:
        """Let go of connections and threads; closing twice is harmless."""
        ...


def check_seconds(field: str, value: float) -> float:
    """``value`` if it is a positive, finite number of seconds, else a :class:`ValidationError`
    naming ``field`` (an infinite one would be a Redis expiry that fails every push)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValidationError(field, f"must be a positive, finite number of seconds, got {value!r}")
    return float(value)


@attrs.define
class _Entry:
    token: str | None  # None once processed
    expires: float


def _found(entry: _Entry, token: str) -> Claim:
    return Claim.PROCESSED if entry.token is None else Claim.TAKEN if entry.token == token else Claim.HELD


class MemoryDedupeStore:
    """The default store: entries in this process's memory, on ``clock`` (its monotonic time).

    Right for one process; with several (gunicorn or uvicorn workers, pods) each would
    remember only its own pushes: use a shared store there.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        check_clock("clock", clock)
        self._clock = clock or SystemClock()
        self._entries: dict[str, _Entry] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap; stale items are skipped when popped

    def __repr__(self) -> str:
        return f"MemoryDedupeStore({len(self._entries)} call IDs)"

    async def claim(self, call_ids: Sequence[str], token: str, ttl: float) -> list[Claim]:
        now = self._expire()
        found = []
        for call_id in call_ids:
            entry = self._entries.get(call_id)
            if entry is None or entry.token == token:  # absent, or our own claim renewed
                self._set(call_id, token, now + ttl)
                found.append(Claim.TAKEN)
            else:
                found.append(_found(entry, token))
        return found

    async def processed(self, call_ids: Sequence[str], token: str, window: float) -> None:
        now = self._expire()
        for call_id in call_ids:
            entry = self._entries.get(call_id)
            if entry is None or entry.token == token:
                self._set(call_id, None, now + window)

    async def release(self, call_ids: Sequence[str], token: str) -> None:
        self._expire()
        for call_id in call_ids:
            entry = self._entries.get(call_id)
            if entry is not None and entry.token == token:
                del self._entries[call_id]

    async def aclose(self) -> None:
        """Nothing to let go of: the entries stay, so a receiver closed and made again remembers them."""

    def _set(self, call_id: str, token: str | None, expires: float) -> None:
        self._entries[call_id] = _Entry(token, expires)
        heapq.heappush(self._expiries, (expires, call_id))

    def _expire(self) -> float:
        """Drop the entries whose time has come, and return the time."""
        now = self._clock.monotonic()
        while self._expiries and self._expiries[0][0] <= now:
            expires, call_id = heapq.heappop(self._expiries)
            entry = self._entries.get(call_id)
            if entry is not None and entry.expires == expires:
                del self._entries[call_id]
        return now
