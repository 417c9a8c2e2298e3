"""The adaptive limit a batch's workers consult, and the sends that drive it.

:class:`AdaptiveConcurrency` admits a worker to take and process a record while fewer
records than the limit are in hand; :meth:`AdaptiveConcurrency.observed` wraps the batch's
``send`` so each attempt feeds the pure :class:`~._adaptive.AimdLimit` (when it went on the
wire, how it ended). Shrinking the limit cancels nothing: a record in flight finishes, and
no new one is taken until fewer than the new limit are in hand.

The limit sits in front of the session: the client's own limits (its ``max_concurrency``,
the route gates, the shared cool-down of a 429's ``Retry-After``) still apply to every
attempt, and the time an attempt waits for them is not latency (it is measured from the
moment the attempt goes on the wire).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .._errors import HTTPStatusError
from .._hooks import RetryScheduled
from .._retry import Failure
from ._adaptive import AimdLimit, ConcurrencyReport, Ticket

if TYPE_CHECKING:
    from .._clock import Clock

__all__ = ["AdaptiveConcurrency", "SendWriteback"]

#: The statuses that say the server is at its capacity, and the retry reasons that name them.
_CONGESTED = frozenset({429, 503})
_CONGESTED_REASONS = frozenset({Failure.RATE_LIMITED.value, Failure.UNAVAILABLE.value})


class SendWriteback(Protocol):
    """Sends one writeback (the canonical ``data_id`` and its body) with the client's
    retries; ``on_send`` is called as each attempt goes on the wire, ``on_retry`` with
    each retry the session schedules."""

    async def __call__(
        self,
        data_id: str,
        body: dict[str, Any],
        on_send: Callable[[], None] | None = None,
        on_retry: Callable[[RetryScheduled], None] | None = None,
    ) -> None: ...


class AdaptiveConcurrency:
    """The changing limit of one ``concurrency="auto"`` batch, on ``clock``."""

    def __init__(self, clock: Clock, max_concurrency: int) -> None:
        self.clock = clock
        self.aimd = AimdLimit(max_concurrency, now=clock.monotonic())
        self.in_hand = 0  # records taken and not yet settled
        self.on_wire = 0  # attempts sent and not yet answered
        self._changed = anyio.Event()

    @property
    def limit(self) -> int:
        return self.aimd.limit

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the limit's places while a record is taken and processed."""
        while self.in_hand >= self.aimd.limit:
            await self._changed.wait()
        self.in_hand += 1
        try:
            yield
        finally:
            self.in_hand -= 1
            self._wake()

    def report(self) -> ConcurrencyReport:
        return self.aimd.report()

    def observed(self, send: SendWriteback) -> SendWriteback:
        """``send``, feeding the limit with each attempt's fate."""

        async def observed_send(
            data_id: str,
            body: dict[str, Any],
            on_send: Callable[[], None] | None = None,
            on_retry: Callable[[RetryScheduled], None] | None = None,
        ) -> None:
            ticket: Ticket | None = None

            def answered() -> Ticket | None:
                """The attempt on the wire is answered: its ticket, now off the wire."""
                nonlocal ticket
                previous, ticket = ticket, None
                if previous is not None:
                    self.on_wire -= 1
                return previous

            def attempt() -> None:
                nonlocal ticket
                answered()
                if on_send is not None:
                    on_send()  # may keep the attempt off the wire: then there is nothing to time
                self.on_wire += 1
                ticket = self.aimd.sent(self.clock.monotonic(), self.on_wire)

            def retry(event: RetryScheduled) -> None:
                refused = answered()
                if refused is not None and event.reason in _CONGESTED_REASONS:
                    self._changed_if(self.aimd.throttled(refused, self.clock.monotonic()))
                if on_retry is not None:
                    on_retry(event)

            try:
                await send(data_id, body, on_send=attempt, on_retry=retry)
            except HTTPStatusError as exc:
                refused = answered()
                if refused is not None and exc.status in _CONGESTED:
                    self._changed_if(self.aimd.throttled(refused, self.clock.monotonic()))
                raise
            except BaseException:
                answered()
                raise
            succeeded = answered()
            if succeeded is not None:
                self._changed_if(self.aimd.completed(succeeded, self.clock.monotonic()))

        return observed_send

    def _changed_if(self, changed: bool) -> None:
        if changed:
            self._wake()

    def _wake(self) -> None:
        """Let every waiting worker look at the limit again."""
        self._changed.set()
        self._changed = anyio.Event()
