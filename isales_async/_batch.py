"""Batch writeback: many business results written back concurrently, each accounted for once.

Input is streamed: ``concurrency`` workers each take the next record only when they are
free, so at most ``concurrency`` records are read ahead, whatever the input's size.
A record's outcome is exactly one of succeeded, failed (with the typed error) or
unknown (sent, fate unknown, never resent); records skipped because a journal already
settled them are counted by reason.
"""

from __future__ import annotations

import contextlib
import enum
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any, overload

import anyio
import attrs

from ._errors import BusinessError, ISalesError, OutcomeUnknownError, ValidationError
from ._journal import Journal, Status
from ._validation import check_data_id, check_int_range

if TYPE_CHECKING:
    from .resources.business_results import BusinessResults

__all__ = ["BatchReport", "Outcome", "OutcomeKind", "Progress", "Writeback", "write_back_many"]

_JSON_FIELDS = {
    "dataId": "data_id",
    "busiResult": "busi_result",
    "subStatus": "sub_status",
    "busiResultDesc": "busi_result_desc",
    "workNo": "work_no",
}


@attrs.frozen
class Writeback:
    """One business result to write back for the outbound call record ``data_id``."""

    data_id: int | str
    busi_result: str
    sub_status: str | None = None
    busi_result_desc: str | None = None
    work_no: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record with the API's camelCase names, empty fields left out."""
        return {api: getattr(self, name) for api, name in _JSON_FIELDS.items() if getattr(self, name) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Writeback:
        """Build from camelCase keys (``dataId``, ``busiResult``, ...); blank optional fields are ``None``."""
        unknown = set(data) - set(_JSON_FIELDS)
        if unknown:
            raise ValidationError(sorted(unknown)[0], "is not a writeback field")
        if data.get("dataId") in (None, ""):
            raise ValidationError("dataId", "is required")
        values = {name: (data.get(api) if data.get(api) != "" else None) for api, name in _JSON_FIELDS.items()}
        values["busi_result"] = values["busi_result"] or ""
        return cls(**values)  # type: ignore[arg-type]


class OutcomeKind(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


@attrs.frozen
class Outcome:
    """What happened to one record; ``error`` is the typed error when it is not ok."""

    data_id: str
    record: Writeback | None
    kind: OutcomeKind
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.SUCCEEDED


@attrs.frozen
class Progress:
    """Counts so far, handed to ``on_progress`` as work completes."""

    succeeded: int
    failed: int
    unknown: int
    skipped: int
    elapsed: float

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.unknown + self.skipped


class _JournalSucceeded(Sequence[Outcome]):
    """The succeeded outcomes of one journal run, read from disk so memory stays flat."""

    def __init__(self, journal: Journal, run: int) -> None:
        self._journal, self._run = journal, run
        self._len = journal.count(Status.SUCCEEDED, run)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Outcome]:
        return self._read()

    def _read(self, offset: int = 0, limit: int = -1) -> Iterator[Outcome]:
        for data_id, record, _, _ in self._journal.rows(Status.SUCCEEDED, run=self._run, offset=offset, limit=limit):
            yield Outcome(data_id, Writeback.from_json(record), OutcomeKind.SUCCEEDED)

    @overload
    def __getitem__(self, index: int) -> Outcome: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Outcome]: ...
    def __getitem__(self, index: int | slice) -> Outcome | Sequence[Outcome]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._len if index < 0 else index
        if not 0 <= position < self._len:
            raise IndexError(index)
        return next(self._read(offset=position, limit=1))  # one row read, not the whole run


@attrs.frozen
class BatchReport:
    """The outcome of every record of a batch; each input record is in exactly one place:
    ``succeeded``, ``failed``, ``unknown``, or counted in ``skipped`` (by reason)."""

    succeeded: Sequence[Outcome]
    failed: Sequence[Outcome]
    unknown: Sequence[Outcome]
    skipped: Mapping[str, int]
    elapsed: float
    stopped_early: bool = False

    @property
    def total(self) -> int:
        return len(self.succeeded) + len(self.failed) + len(self.unknown) + sum(self.skipped.values())

    @property
    def rate(self) -> float:
        """Records settled (sent or refused) per second."""
        settled = len(self.succeeded) + len(self.failed) + len(self.unknown)
        return settled / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return (
            f"{len(self.succeeded)} succeeded, {len(self.failed)} failed, {len(self.unknown)} unknown; "
            f"skipped: {skipped}; {self.elapsed:.1f}s ({self.rate:.0f}/s)"
            + ("; stopped early (fail_fast)" if self.stopped_early else "")
        )


SKIP_SUCCEEDED = "succeeded in an earlier run"
SKIP_FAILED = "failed permanently in an earlier run"
SKIP_UNKNOWN = "outcome unknown from an earlier run (not resent)"


class _Store:
    """Dedupe and bookkeeping without a journal: the report lives in memory."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.succeeded: list[Outcome] = []

    def claim(self, data_id: str, record: Writeback) -> str | None:
        """``None`` to send, ``"duplicate"``, or a skip reason. Synchronous: no await between check and mark."""
        if data_id in self._seen:
            return "duplicate"
        self._seen.add(data_id)
        return None

    def sending(self, data_id: str) -> None:
        """Without a journal nothing outlives the process, so there is nothing to record."""

    def finish(self, outcome: Outcome, status: Status) -> None:
        if outcome.ok:
            self.succeeded.append(outcome)

    def succeeded_view(self) -> Sequence[Outcome]:
        return self.succeeded


class _JournalStore(_Store):
    def __init__(self, journal: Journal, retry_unknown: bool) -> None:  # the journal replaces the in-memory state
        self.journal = journal
        self._retry_unknown = retry_unknown

    def claim(self, data_id: str, record: Writeback) -> str | None:
        found = self.journal.lookup(data_id)
        if found is not None:
            status, run = found
            if run == self.journal.run:
                return "duplicate"
            if status is Status.SUCCEEDED:
                return SKIP_SUCCEEDED
            if status is Status.FAILED:
                return SKIP_FAILED
            if status in (Status.UNKNOWN, Status.SENDING) and not self._retry_unknown:
                return SKIP_UNKNOWN
        self.journal.mark(data_id, Status.QUEUED, record.to_json())
        return None

    def sending(self, data_id: str) -> None:
        self.journal.mark(data_id, Status.SENDING)

    def finish(self, outcome: Outcome, status: Status) -> None:
        self.journal.finish(outcome.data_id, status, outcome.error)

    def succeeded_view(self) -> Sequence[Outcome]:
        return _JournalSucceeded(self.journal, self.journal.run)


async def _aiter(records: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record


def _drop_tracebacks(error: BaseException | None) -> None:
    """A kept error must not keep its frames (and their records) alive: a batch may keep thousands."""
    while error is not None:
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def _journal_status(error: BaseException) -> Status:
    if isinstance(error, OutcomeUnknownError):
        return Status.UNKNOWN
    if isinstance(error, (ValidationError, BusinessError)):
        return Status.FAILED
    return Status.NOT_SENT  # connect failure, 429/503/401 after retries: provably not applied


async def write_back_many(
    resource: BusinessResults,
    records: Iterable[Writeback] | AsyncIterable[Writeback],
    *,
    concurrency: int = 10,
    journal: Journal | str | PathLike[str] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    fail_fast: bool = False,
    retry_unknown: bool = False,
) -> BatchReport:
    """Write back many business results concurrently; every record is accounted for once.

    Args:
        records: a sync or async iterable of :class:`~isales_async.Writeback`, read
            only as workers free up (at most ``concurrency`` records read ahead).
        concurrency: records in flight at once (the client's ``max_concurrency``
            still bounds requests across everything it does).
        journal: an SQLite file path (or :class:`~isales_async.Journal`) recording
            each outcome as it completes; a re-run with the same journal skips what
            succeeded or failed for good, and does not resend unknown records
            unless ``retry_unknown``. With a journal, ``report.succeeded`` is read
            from disk, so memory stays flat for millions of records.
        on_progress: called with :class:`~isales_async.Progress` as records settle.
        fail_fast: stop taking new records after the first failure or unknown.
        retry_unknown: resend records whose outcome an earlier run left unknown.

    A bad record (invalid, ``0200033``, ``0200034``) fails alone; a duplicate
    ``data_id`` fails as a duplicate and is not sent twice; a write of unknown fate
    is reported unknown and not resent.

    Called as ``client.business_results.write_back_many(records, ...)``; ``resource``
    is that ``BusinessResults``.
    """
    check_int_range("concurrency", concurrency, 1)
    if journal is not None and not isinstance(journal, Journal):
        journal = Journal(journal)
    store = _JournalStore(journal, retry_unknown) if journal is not None else _Store()
    clock = resource._client._session.clock
    started = clock.monotonic()
    failed: list[Outcome] = []
    unknown: list[Outcome] = []
    skipped: Counter[str] = Counter()
    counts: Counter[OutcomeKind] = Counter()
    source = _aiter(records)
    take_lock = anyio.Lock()
    stopped = False
    end = object()

    def report_progress() -> None:
        if on_progress is not None:
            on_progress(
                Progress(
                    counts[OutcomeKind.SUCCEEDED],
                    counts[OutcomeKind.FAILED],
                    counts[OutcomeKind.UNKNOWN],
                    sum(skipped.values()),
                    clock.monotonic() - started,
                )
            )

    def settle(outcome: Outcome, status: Status | None) -> None:
        """Count and file one outcome; ``status`` is what the journal records (``None``: nothing was claimed)."""
        nonlocal stopped
        _drop_tracebacks(outcome.error)
        counts[outcome.kind] += 1
        if status is not None:
            store.finish(outcome, status)
        if outcome.kind is OutcomeKind.FAILED:
            failed.append(outcome)
        elif outcome.kind is OutcomeKind.UNKNOWN:
            unknown.append(outcome)
        if fail_fast and not outcome.ok:
            stopped = True
        report_progress()

    async def process(record: Any) -> None:
        if not isinstance(record, Writeback):
            settle(
                Outcome(
                    "",
                    None,
                    OutcomeKind.FAILED,
                    ValidationError("record", f"expected a Writeback, got {type(record).__name__}"),
                ),
                None,
            )
            return
        try:
            data_id = check_data_id(record.data_id)
            body = resource.validate_write_back(record)
        except ValidationError as exc:
            settle(Outcome(str(record.data_id), record, OutcomeKind.FAILED, exc), None)
            return
        claim = store.claim(data_id, record)
        if claim == "duplicate":
            error = ValidationError("data_id", f"{data_id} appears earlier in this batch; not sent twice")
            settle(Outcome(data_id, record, OutcomeKind.FAILED, error), None)
            return
        if claim is not None:
            skipped[claim] += 1
            report_progress()
            return
        try:
            await resource._send_write_back(data_id, body, on_send=lambda: store.sending(data_id))
        except ISalesError as exc:
            status = _journal_status(exc)
            kind = OutcomeKind.UNKNOWN if status is Status.UNKNOWN else OutcomeKind.FAILED
            settle(Outcome(data_id, record, kind, exc), status)
        else:
            settle(Outcome(data_id, record, OutcomeKind.SUCCEEDED), Status.SUCCEEDED)

    async def worker() -> None:
        while True:
            async with take_lock:
                record = end if stopped else await anext(source, end)
            if record is end:
                return
            await process(record)

    async with contextlib.aclosing(source), anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return BatchReport(
        succeeded=store.succeeded_view(),
        failed=failed,
        unknown=unknown,
        skipped=dict(skipped),
        elapsed=clock.monotonic() - started,
        stopped_early=stopped,
    )
