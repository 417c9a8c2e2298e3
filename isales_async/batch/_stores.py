"""Where a batch keeps what it took: in memory, in its journal, or (a dry run) nowhere.

A store decides what to do with a prepared record from what earlier runs left, before
any write, so a run and its dry run decide alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ._journal import Journal
from ._report import JournalSucceeded, Outcome
from ._rerun import IN_DOUBT, Status, decide
from ._writeback import PreparedWriteback, Writeback

__all__ = ["DUPLICATE", "Decision", "JournalStore", "PlanStore", "Store"]

DUPLICATE = "duplicate"


class Decision(NamedTuple):
    """What a batch does with a prepared record, as its store decides before any write."""

    skip: str | None  # None: send it; "duplicate"; or a skip reason (a key of BatchReport.skipped)
    known: bool = False  # an earlier run of the journal took it
    in_doubt: bool = False  # ... and left it in doubt


NEW = Decision(None)
DUPLICATE_DECISION = Decision(DUPLICATE)


def decision_of(
    journal: Journal,
    found: tuple[Status, int, str | None],
    prepared: PreparedWriteback,
    *,
    retry_failed: bool,
    resend_unknown: bool,
    defined_now: bool,
) -> Decision:
    """The decision for a record an earlier run of the journal took (``found``: its row)."""
    status, _, previous_fingerprint = found
    # The code matters only to a failure the definitions may have caused; read it only then.
    previous_code = journal.error_code(prepared.key) if status is Status.FAILED and defined_now else None
    skip = decide(
        status,
        previous_fingerprint,
        prepared.fingerprint,
        retry_failed=retry_failed,
        resend_unknown=resend_unknown,
        previous_code=previous_code,
        defined_now=defined_now,
    )
    return Decision(skip, True, status in IN_DOUBT)


class Store:
    """Dedupe and bookkeeping without a journal: the report lives in memory.

    A store first :meth:`decide` s, changing nothing, then :meth:`claim` s the record
    unless it is a duplicate; both are synchronous, so no await comes between the two.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.succeeded: list[Outcome] = []

    @property
    def run(self) -> int | None:
        """The journal's number of this run (``None`` without a journal)."""
        return None

    def decide(self, prepared: PreparedWriteback, defined_now: bool) -> Decision:
        """What to do with the record; ``defined_now``: this run checked it against the
        tenant's definitions and they define it."""
        return DUPLICATE_DECISION if prepared.key in self._seen else NEW

    def claim(self, prepared: PreparedWriteback, record: Writeback, decision: Decision, sending: bool) -> None:
        """Take the record for this run: a later one with its dataId is a duplicate.
        ``sending``: it goes to the wire next (else it is skipped or refused)."""
        self._seen.add(prepared.key)

    def sending(self, prepared: PreparedWriteback, record: Writeback, known: bool) -> None:
        """Without a journal nothing outlives the process, so there is nothing to record."""

    def finish(self, outcome: Outcome, status: Status) -> None:
        if outcome.ok:
            self.succeeded.append(outcome)

    def succeeded_view(self, unrecorded: Sequence[Outcome]) -> Sequence[Outcome]:
        return self.succeeded


class JournalStore(Store):
    def __init__(self, journal: Journal, *, retry_failed: bool, resend_unknown: bool) -> None:
        self.journal = journal  # replaces the in-memory state
        self._retry_failed = retry_failed
        self._resend_unknown = resend_unknown

    @property
    def run(self) -> int | None:
        return self.journal.run

    def decide(self, prepared: PreparedWriteback, defined_now: bool) -> Decision:
        found = self.journal.lookup(prepared.key)
        if found is None:
            return NEW
        if found[1] == self.journal.run:  # claimed by this run already
            return DUPLICATE_DECISION
        return decision_of(
            self.journal,
            found,
            prepared,
            retry_failed=self._retry_failed,
            resend_unknown=self._resend_unknown,
            defined_now=defined_now,
        )

    def claim(self, prepared: PreparedWriteback, record: Writeback, decision: Decision, sending: bool) -> None:
        if decision.known:
            # Only claim it for this run: a known record keeps what the journal knew (applied,
            # failed, in doubt, with that payload's fingerprint) until this one really leaves
            # (on_send), so a record skipped, refused, or stopped before sending changes nothing.
            self.journal.touch(prepared.key)
        else:
            self.journal.mark(prepared.key, Status.QUEUED, record.to_json(), prepared.fingerprint)

    def sending(self, prepared: PreparedWriteback, record: Writeback, known: bool) -> None:
        if known:  # the claim left the earlier payload in place: store the one now leaving
            self.journal.mark(prepared.key, Status.SENDING, record.to_json(), prepared.fingerprint)
        else:  # the claim stored this payload already
            self.journal.mark(prepared.key, Status.SENDING)

    def finish(self, outcome: Outcome, status: Status) -> None:
        self.journal.finish(outcome.key, status, outcome.error)

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
        self._retry_failed = retry_failed
        self._resend_unknown = resend_unknown

    def decide(self, prepared: PreparedWriteback, defined_now: bool) -> Decision:
        if prepared.key in self._seen:
            return DUPLICATE_DECISION
        if self.journal is None:
            return NEW
        found = self.journal.lookup(prepared.key)
        if found is None:
            return NEW
        return decision_of(
            self.journal,
            found,
            prepared,
            retry_failed=self._retry_failed,
            resend_unknown=self._resend_unknown,
            defined_now=defined_now,
        )

    def finish(self, outcome: Outcome, status: Status) -> None:
        """Nothing is recorded: a plan leaves the journal as it found it."""
