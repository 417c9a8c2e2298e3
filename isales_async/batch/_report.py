"""What a batch reports: each record's outcome, the report (its successes read back from the
journal when it has one), a dry run's plan, and which errors stop a batch (:func:`fatal_reason`).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import overload

import attrs

from .._errors import (
    AuthenticationError,
    ConnectError,
    DuplicateRecordError,
    ISalesError,
    JournalError,
    TLSError,
    UndefinedResultError,
    ValidationError,
)
from ._adaptive import ConcurrencyReport
from ._journal import Journal
from ._writeback import Writeback

__all__ = [
    "DUPLICATE_REASON",
    "BatchReport",
    "JournalSucceeded",
    "Outcome",
    "OutcomeKind",
    "Progress",
    "WritebackPlan",
    "fatal_reason",
    "refusal_reason",
]


class OutcomeKind(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"  # taken, then the batch stopped before sending it: a re-run sends it

    # A member is its only instance and equals itself alone, so identity hashes it: in C,
    # where Enum's own hash (of the name) runs in Python, twice a record as a batch counts.
    __hash__ = object.__hash__


@attrs.frozen
class Outcome:
    """What happened to one record; ``error`` is the typed error when it is not ok.

    ``error`` is always an :class:`~isales_async.ISalesError`: an exception of any other
    type (a bug, in the client or in a record's own methods) arrives wrapped, as an
    :class:`~isales_async.UnexpectedError` before sending or an
    :class:`~isales_async.OutcomeUnknownError` after, with it as ``__cause__``.

    ``data_id`` is the record's dataId as given (an int stays an int); ``key`` is its
    canonical form, the server's and the journal's key ("" when the dataId is invalid).
    """

    data_id: int | str
    record: Writeback | None
    kind: OutcomeKind
    error: ISalesError | None = None
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.SUCCEEDED


@attrs.frozen
class Progress:
    """Counts so far, handed to ``on_progress`` as work completes.

    ``concurrency`` is the number of records the batch may have in flight now: the fixed
    ``concurrency``, or with ``concurrency="auto"`` the adaptive limit as it stands.
    """

    succeeded: int
    failed: int
    unknown: int
    skipped: int
    elapsed: float
    not_sent: int = 0
    concurrency: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.unknown + self.skipped + self.not_sent


class JournalSucceeded(Sequence[Outcome]):
    """The succeeded outcomes of one journal run, read from disk so memory stays flat.

    Each read opens the journal read-only, so the report outlives the batch's own
    connection, and reads the successes of its own run only, so it stays right after
    later runs on the same journal; ``extra`` are successes the journal failed to record.
    """

    def __init__(self, path: str, run: int, count: int, extra: Sequence[Outcome]) -> None:
        self._path, self._run, self._count, self._extra = path, run, count, list(extra)

    def __len__(self) -> int:
        return self._count + len(self._extra)

    def __iter__(self) -> Iterator[Outcome]:
        yield from self._read()
        yield from self._extra

    def _read(self, offset: int = 0, limit: int = -1) -> Iterator[Outcome]:
        with Journal(self._path, readonly=True) as journal:
            for key, data in journal.succeeded_in(self._run, offset=offset, limit=limit):
                record = Writeback.from_json(data)
                yield Outcome(record.data_id, record, OutcomeKind.SUCCEEDED, key=key)

    @overload
    def __getitem__(self, index: int) -> Outcome: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Outcome]: ...
    def __getitem__(self, index: int | slice) -> Outcome | Sequence[Outcome]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(index)
        if position >= self._count:
            return self._extra[position - self._count]
        (outcome,) = self._read(offset=position, limit=1)  # one row read (and its connection closed)
        return outcome


@attrs.frozen
class BatchReport:
    """The outcome of every record a batch took; each is in exactly one place:
    ``succeeded``, ``failed``, ``unknown``, ``not_sent``, or counted in ``skipped`` (by reason).

    ``stopped_early`` says the batch stopped before its input ended (``fail_fast``, a
    :class:`BatchControl`, or a fatal error), and ``stop_reason`` why; records never
    taken from the input are in no list: a re-run with the journal takes them.

    ``concurrency`` says how many records it ran with at once (a
    :class:`~isales_async.ConcurrencyReport`: with ``concurrency="auto"``, the limit it
    settled on, its final and peak values and how it got there).
    """

    succeeded: Sequence[Outcome]
    failed: Sequence[Outcome]
    unknown: Sequence[Outcome]
    skipped: Mapping[str, int]
    elapsed: float
    stopped_early: bool = False
    not_sent: Sequence[Outcome] = ()
    stop_reason: str | None = None
    journal_run: int | None = None  # the journal's number of this run; None without a journal
    concurrency: ConcurrencyReport | None = None

    @property
    def total(self) -> int:
        return (
            len(self.succeeded) + len(self.failed) + len(self.unknown) + len(self.not_sent) + sum(self.skipped.values())
        )

    @property
    def rate(self) -> float:
        """Records settled (sent or refused) per second."""
        settled = len(self.succeeded) + len(self.failed) + len(self.unknown)
        return settled / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return (
            f"{len(self.succeeded)} succeeded, {len(self.failed)} failed, {len(self.unknown)} unknown, "
            f"{len(self.not_sent)} not sent; skipped: {skipped}; {self.elapsed:.1f}s ({self.rate:.0f}/s)"
            + (
                f"; {self.concurrency.summary()}"
                if self.concurrency is not None and self.concurrency.mode == "auto"
                else ""
            )
            + (f"; stopped early: {self.stop_reason}" if self.stopped_early else "")
        )


#: The reason of a refused duplicate, in :attr:`WritebackPlan.refused_by_reason`.
DUPLICATE_REASON = "duplicate dataId"


def refusal_reason(error: BaseException | None) -> str | None:
    """Why a record was refused before sending, as a short reason to count by, or ``None``
    when ``error`` is not such a refusal (a record the server refused was sent)."""
    if isinstance(error, UndefinedResultError):
        return error.reason
    if isinstance(error, DuplicateRecordError):
        return DUPLICATE_REASON
    if isinstance(error, ValidationError):
        return f"invalid {error.field}"
    return None


@attrs.frozen
class WritebackPlan:
    """What a batch would do, from :func:`plan_write_back`; nothing was sent.

    ``would_send`` records would be sent, ``would_resend`` of them taken by an earlier
    run of the journal (changed since, not applied, or resent as asked); ``skipped``
    counts the rest by reason as :attr:`BatchReport.skipped` does; ``refused`` holds the
    outcome of every record refused before sending (invalid, a duplicate, undefined in
    the tenant), each with its typed error, as a run would report it in ``failed``.
    ``stop_reason`` says why the plan stopped before the input ended (``fail_fast``), if it did.
    """

    would_send: int
    would_resend: int
    skipped: Mapping[str, int]
    refused: Sequence[Outcome]
    elapsed: float
    stop_reason: str | None = None

    @property
    def refused_by_reason(self) -> dict[str, int]:
        """How many records each reason refuses (see :func:`refusal_reason`)."""
        reasons = Counter(refusal_reason(o.error) or f"unexpected {type(o.error).__name__}" for o in self.refused)
        return dict(sorted(reasons.items()))

    @property
    def total(self) -> int:
        return self.would_send + sum(self.skipped.values()) + len(self.refused)

    def summary(self) -> str:
        def counts(by_reason: Mapping[str, int]) -> str:
            return ", ".join(f"{n} {reason}" for reason, n in sorted(by_reason.items())) or "none"

        return (
            f"would send {self.would_send} ({self.would_resend} again); would skip: {counts(self.skipped)}; "
            f"would refuse: {counts(self.refused_by_reason)}"
            + (f"; would stop early: {self.stop_reason}" if self.stop_reason else "")
        )


def fatal_reason(error: BaseException) -> str | None:
    """Why ``error`` must stop a whole batch, or ``None`` when it concerns only its record.

    No record can succeed past these, so sending more would only multiply the failure
    (20,000 doomed 401s): a refused signature, a TLS failure, a server unreachable
    once the session's retries are spent, a journal that cannot record.
    """
    if isinstance(error, AuthenticationError):
        return f"the server refused the credentials (HTTP 401: check the AK/SK and the clock): {error}"
    if isinstance(error, TLSError):
        return f"TLS failed (check the CA file and the server's certificate): {error}"
    if isinstance(error, ConnectError):
        return f"the server is unreachable and the retries are spent: {error}"
    if isinstance(error, JournalError):
        return f"the journal failed, so nothing more can be recorded before sending: {error}"
    return None
