"""Where a batch keeps what it took: in memory, in its journal, or (a dry run) nowhere.

A store decides what to do with a prepared record from what earlier runs left, before
any write, so a run and its dry run decide alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from .._errors import JournalError
from ._journal import Journal, JournalRow, Write
from ._report import JournalSucceeded, Outcome
from ._rerun import IN_DOUBT, Status, decide
from ._writeback import PreparedWriteback, Writeback
from ._writer import JournalWriter

__all__ = ["DUPLICATE", "Decision", "JournalStore", "PlanStore", "Store"]

DUPLICATE = "duplicate"


class Decision(NamedTuple):
    """What a batch does with a prepared record, as its store decides before any write."""

    skip: str | None  # None: send it; "duplicate"; or a skip reason (a key of BatchReport.skipped)
    known: bool = False  # an earlier run of the journal took it
    in_doubt: bool = False  # ... and left it in doubt
    previous: JournalRow | None = None  # ... its row then, put back if this run's send never leaves


NEW = Decision(None)
DUPLICATE_DECISION = Decision(DUPLICATE)


def decision_of(
    row: JournalRow,
    prepared: PreparedWriteback,
    *,
    retry_failed: bool,
    resend_unknown: bool,
    defined_now: bool,
) -> Decision:
    """The decision for a record an earlier run of the journal took (``row``: its row)."""
    skip = decide(
        row.status,
        row.fingerprint,
        prepared.fingerprint,
        retry_failed=retry_failed,
        resend_unknown=resend_unknown,
        # The code matters only to a failure the definitions may have caused.
        previous_code=row.code if row.status is Status.FAILED and defined_now else None,
        defined_now=defined_now,
    )
    return Decision(skip, True, row.status in IN_DOUBT, row if skip is None else None)


class Store:
    """Dedupe and bookkeeping without a journal: the report lives in memory.

    A store first :meth:`decide` s, changing nothing, then :meth:`claim` s the record
    unless it is a duplicate; both are synchronous, so no await comes between the two.
    A store that :attr:`looks_up` rows is asked for the rows of a chunk of records
    (:meth:`look_up`), then given them as the chunk's records are taken
    (:meth:`begin_chunk`); a chunk may be looked up while the one before it is taken.
    """

    looks_up = False

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.succeeded: list[Outcome] = []

    @property
    def run(self) -> int | None:
        """The journal's number of this run (``None`` without a journal)."""
        return None

    def start(self, on_failure: Callable[[JournalError, list[Outcome]], None]) -> None:
        """The batch begins; ``on_failure`` hears of a journal write that failed, with the successes it lost."""

    async def flush(self) -> None:
        """Wait until everything recorded so far is on disk."""

    def close(self) -> None:
        """The batch is over (or cancelled): finish recording, and let go of the journal."""

    def look_up(self, keys: Sequence[str]) -> asyncio.Future[dict[str, JournalRow]]:
        """What earlier runs left for ``keys`` (those of a chunk of records), as the store's
        writes queued so far leave it: without a journal, nothing."""
        nothing: asyncio.Future[dict[str, JournalRow]] = asyncio.get_running_loop().create_future()
        nothing.set_result({})
        return nothing

    def begin_chunk(self, rows: dict[str, JournalRow]) -> None:
        """The records of the chunk whose ``rows`` were looked up are taken (and decided) next."""

    def decide(self, prepared: PreparedWriteback, defined_now: bool) -> Decision:
        """What to do with the record; ``defined_now``: this run checked it against the
        tenant's definitions and they define it."""
        return DUPLICATE_DECISION if prepared.key in self._seen else NEW

    def claim(self, prepared: PreparedWriteback, record: Writeback, decision: Decision, sending: bool) -> None:
        """Take the record for this run: a later one with its dataId is a duplicate.
        ``sending``: it goes to the wire next (else it is skipped or refused)."""
        self._seen.add(prepared.key)

    def intend(self, prepared: PreparedWriteback, record: Writeback, decision: Decision) -> Awaitable[None] | None:
        """Record that the claimed record is about to be sent; await the result (if any)
        before it may leave. Without a journal nothing outlives the process: nothing to record."""
        return None

    def unsent(self, prepared: PreparedWriteback, record: Writeback, decision: Decision) -> None:
        """The record whose intent was recorded never left: record it as claimed and not sent."""

    def finish(self, outcome: Outcome, status: Status) -> None:
        if outcome.ok:
            self.succeeded.append(outcome)

    def succeeded_view(self, unrecorded: Sequence[Outcome]) -> Sequence[Outcome]:
        return self.succeeded


class JournalStore(Store):
    """A run's journal, written from its own thread (:class:`JournalWriter`), in the order the
    batch acts: a record's claim and intent before anything after them is read or sent."""

    looks_up = True

    def __init__(self, journal: Journal, *, retry_failed: bool, resend_unknown: bool) -> None:
        self.journal = journal  # replaces the in-memory state
        self._retry_failed = retry_failed
        self._resend_unknown = resend_unknown
        self._rows: dict[str, JournalRow] = {}  # the rows of the chunk being taken
        # The keys taken from it, and from the chunk before it: the chunk's rows were read
        # while the one before was taken, so their claims may have come after the read.
        self._taken: set[str] = set()
        self._taken_before: set[str] = set()
        self._writer: JournalWriter[Outcome] | None = None

    @property
    def run(self) -> int | None:
        return self.journal.run

    @property
    def writer(self) -> JournalWriter[Outcome]:
        assert self._writer is not None, "start() comes first"
        return self._writer

    def start(self, on_failure: Callable[[JournalError, list[Outcome]], None]) -> None:
        self._writer = JournalWriter(self.journal, on_failure)

    async def flush(self) -> None:
        await self.writer.flush()

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def look_up(self, keys: Sequence[str]) -> asyncio.Future[dict[str, JournalRow]]:
        return self.writer.lookup(keys)

    def begin_chunk(self, rows: dict[str, JournalRow]) -> None:
        self._rows, self._taken_before, self._taken = rows, self._taken, set()

    def decide(self, prepared: PreparedWriteback, defined_now: bool) -> Decision:
        if prepared.key in self._taken or prepared.key in self._taken_before:  # claimed after the read
            return DUPLICATE_DECISION
        row = self._rows.get(prepared.key)
        if row is None:
            return NEW
        if row.claimed == self.journal.run:  # claimed by this run already
            return DUPLICATE_DECISION
        return decision_of(
            row, prepared, retry_failed=self._retry_failed, resend_unknown=self._resend_unknown, defined_now=defined_now
        )

    def claim(self, prepared: PreparedWriteback, record: Writeback, decision: Decision, sending: bool) -> None:
        self._taken.add(prepared.key)
        if not sending:  # a record sent is claimed by its intent (intend)
            self.writer.write(self._claiming(prepared, record, decision))

    def _claiming(self, prepared: PreparedWriteback, record: Writeback, decision: Decision) -> Write:
        if decision.known:
            # Only claim it for this run: a known record keeps what the journal knew (applied,
            # failed, in doubt, with that payload's fingerprint) until this one really leaves,
            # so a record skipped, refused, or stopped before sending changes nothing.
            return self.journal.touching(prepared.key)
        return self.journal.marking(prepared.key, Status.QUEUED, record.to_json(), prepared.fingerprint)

    def intend(self, prepared: PreparedWriteback, record: Writeback, decision: Decision) -> Awaitable[None]:
        return self.writer.durable(
            self.journal.marking(prepared.key, Status.SENDING, record.to_json(), prepared.fingerprint)
        )

    def unsent(self, prepared: PreparedWriteback, record: Writeback, decision: Decision) -> None:
        if decision.previous is not None:
            self.writer.write(self.journal.restoring(prepared.key, decision.previous))
        else:
            self.writer.write(self._claiming(prepared, record, decision))

    def finish(self, outcome: Outcome, status: Status) -> None:
        statement = self.journal.finishing(outcome.key, status, outcome.error)
        self.writer.write(statement, outcome if outcome.ok else None)  # a success the journal loses is still reported

    def succeeded_view(self, unrecorded: Sequence[Outcome]) -> Sequence[Outcome]:
        assert self.journal.run is not None
        count = self.journal.count_succeeded_in(self.journal.run)
        return JournalSucceeded(self.journal.path, self.journal.run, count, unrecorded)


class PlanStore(Store):
    """A dry run's store: decides as a run on ``journal`` would, reading it only; writes nothing.

    What this run takes is remembered in memory (the keys only), as without a journal.
    """

    def __init__(self, journal: Journal | None, *, retry_failed: bool, resend_unknown: bool) -> None:
        super().__init__()
        self.journal = journal
        self.looks_up = journal is not None
        self._retry_failed = retry_failed
        self._resend_unknown = resend_unknown
        self._rows: dict[str, JournalRow] = {}

    def look_up(self, keys: Sequence[str]) -> asyncio.Future[dict[str, JournalRow]]:
        """Read at once: a plan writes nothing, so the rows cannot change before they are used."""
        future: asyncio.Future[dict[str, JournalRow]] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(self.journal.lookup_many(keys) if self.journal is not None else {})
        except JournalError as exc:
            future.set_exception(exc)
        return future

    def begin_chunk(self, rows: dict[str, JournalRow]) -> None:
        self._rows = rows

    def decide(self, prepared: PreparedWriteback, defined_now: bool) -> Decision:
        if prepared.key in self._seen:
            return DUPLICATE_DECISION
        row = self._rows.get(prepared.key)
        if row is None:
            return NEW
        return decision_of(
            row, prepared, retry_failed=self._retry_failed, resend_unknown=self._resend_unknown, defined_now=defined_now
        )

    def finish(self, outcome: Outcome, status: Status) -> None:
        """Nothing is recorded: a plan leaves the journal as it found it."""
