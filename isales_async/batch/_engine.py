"""Batch writeback: many business results written back concurrently, each accounted for once.

Input is streamed: ``concurrency`` workers each take the next record only when they are
free, so at most ``concurrency`` records are read ahead, whatever the input's size. Each
worker loops over take, decide and claim, send: no task per record.

With a journal, records are admitted in waves, so the journal commits a group of intents
at a time rather than one a record: a plain iterable is read in chunks of half
``concurrency`` (with ``"auto"``, of the limit in force), each looked up in one query while
the one before it is taken; a chunk is decided and claimed at once, and the intents to send
its records are committed together, before any of them leaves, while the wave before it is
still being sent. So besides the records in flight, fewer than ``concurrency`` (or that
limit) more hold a durable intent: after a kill fewer than twice that are in doubt. What
is left of a wave when the batch stops is reported not sent, its journal rows put back; a
chunk read ahead and not yet admitted is in no count, as if never read. A batch cancelled
from outside reports nothing, but puts back the rows of what never left too, so a re-run
sends them.
Every record taken is reported exactly once: succeeded, failed (with the typed error),
unknown (sent, fate unknown, never resent), not sent (taken, then the batch stopped
before sending it), or counted as skipped by reason (a journal settled it earlier).

One bad record fails alone, whatever is wrong with it: invalid, a duplicate, refused by
the server, or (with ``check_definitions``) a ``busiResult``/``subStatus`` the tenant's
definitions lack, refused before sending. What no record can fix stops the batch
(:func:`fatal_reason`): nothing more is sent, requests already on the wire finish, and
:class:`~isales_async.BatchAbortedError` carries the report. A :class:`BatchControl`
stops a batch from outside, gracefully or not.

:func:`plan_write_back` is the same batch with the sending left out (a dry run): each
record goes through the same :meth:`_Batch.process`, whose store decides from the
journal without writing it, so the plan and the run cannot disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections import Counter, deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Iterator
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel

from .._errors import (
    BusinessError,
    DuplicateRecordError,
    ISalesError,
    JournalError,
    OutcomeUnknownError,
    UndefinedResultError,
    UnexpectedError,
    ValidationError,
)
from .._hooks import logger
from .._validation import check_int_range
from ._adaptive import MAX_CONCURRENCY_BOUND, ConcurrencyReport
from ._concurrency import AdaptiveConcurrency, SendWriteback
from ._journal import Journal, JournalRow
from ._rerun import Status
from ._writeback import PreparedWriteback, Writeback, prepare

if TYPE_CHECKING:
    from .._clock import Clock
    from ._definitions import Definitions

from ._report import (
    BatchReport,
    Outcome,
    OutcomeKind,
    Progress,
    WritebackPlan,
    fatal_reason,
)
from ._stores import DUPLICATE, Decision, JournalStore, PlanStore, Store

__all__ = ["DEFAULT_MAX_CONCURRENCY", "BatchControl", "check_concurrency", "plan_write_back", "write_back_many"]


class BatchControl:
    """Stops a running batch from outside: a signal handler, a web request, a shutdown hook.

    Pass it as ``write_back_many(..., control=control)``, then from the same event loop:

    - :meth:`stop`: take no new record and send nothing new; requests on the wire finish.
      The batch returns its report (``stopped_early``); records taken but not sent are
      ``not_sent`` and stay pending in the journal.
    - :meth:`abandon`: also stop waiting for the requests on the wire; their records are
      reported unknown (they may have been applied) and are never resent unless asked.

    From another thread, use ``loop.call_soon_threadsafe(control.stop)``. One control
    serves one batch; calling ``stop`` before the batch starts makes it take nothing.
    """

    def __init__(self) -> None:
        self.stopping: bool = False
        self.abandoned: bool = False
        self._batch: _Batch | None = None

    def stop(self) -> None:
        self.stopping = True
        if self._batch is not None:
            self._batch.halt("stopped by BatchControl.stop()")

    def abandon(self) -> None:
        self.stopping = self.abandoned = True
        if self._batch is not None:
            self._batch.abandon()


_END = object()


class _NotSent(Exception):
    """Raised from ``on_send`` to keep an attempt off the wire: the batch stopped."""


class _InFlight:
    """A record between its claim and its outcome; ``sent``: it may be on the server.

    :meth:`cancel` ends its wait (for its intent to be durable, for the client's limits, a
    retry's backoff, or, abandoned, its answer) by cancelling the worker's task, as
    ``asyncio.timeout`` does; :meth:`caught` tells that cancellation from any other, which
    passes through. An anyio cancel scope a record did the same at about 1.2 KiB a write
    in flight and 4% of a writeback batch's CPU.
    """

    __slots__ = ("active", "batch", "cancelled", "cancelling", "sent", "task")

    def __init__(self, batch: _Batch, task: asyncio.Task[Any]) -> None:
        self.batch = batch
        self.task = task
        self.cancelling = _cancelling(task)
        self.sent = False
        self.cancelled = False
        self.active = True  # until its outcome is known

    def __call__(self) -> None:
        """The write's ``on_send``, called as each attempt goes on the wire (its intent is
        durable by then); the record itself, not a bound method, so it costs nothing more."""
        if not self.batch.sending_allowed:
            raise _NotSent
        self.sent = True

    def cancel(self) -> None:
        """Stop waiting for this record, at the wait it is in."""
        if self.cancelled or not self.active:
            return
        if self.task is asyncio.current_task():
            # Stopped by its own task (a hook that stops the batch): it waits next, or is done.
            asyncio.get_running_loop().call_soon(self.cancel)
            return
        self.cancelled = True
        self.task.cancel()

    def caught(self) -> bool:
        """Whether the cancellation being handled is this record's alone (then it is consumed)."""
        if not self.cancelled:
            return False
        uncancel = getattr(self.task, "uncancel", None)  # Python 3.11+
        return uncancel is None or uncancel() <= self.cancelling


def _cancelling(task: asyncio.Task[Any]) -> int:
    """How many cancellations of ``task`` are pending (always 0 before Python 3.11, which cannot tell)."""
    cancelling = getattr(task, "cancelling", None)
    return cancelling() if cancelling is not None else 0


async def _aiter(records: AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    async for record in records:
        yield record


def _drop_tracebacks(error: BaseException | None) -> None:
    """A kept error must not keep its frames (and their records) alive: a batch may keep thousands."""
    while error is not None:
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def _failure_status(error: BaseException) -> Status:
    """The journal state of a record that failed with ``error`` without an unknown outcome."""
    if isinstance(error, (ValidationError, BusinessError)):
        return Status.FAILED
    return Status.NOT_SENT  # 429/503 after retries, a bug before sending: provably not applied


class BatchAbortedError(ISalesError):
    """A fatal error stopped a batch: nothing more was sent, and records not yet sent stay pending.

    ``report`` is the :class:`~isales_async.BatchReport` so far (records taken but never
    sent are in ``report.not_sent``), ``reason`` says why in words, ``cause`` (also
    ``__cause__``) is the error: an :class:`AuthenticationError`, a :class:`ConnectError`
    once the retries are spent, a :class:`TLSError`, a :class:`JournalError`, or the
    input iterable's own exception.
    """

    def __init__(self, reason: str, *, report: BatchReport, cause: BaseException | None) -> None:
        super().__init__(f"the batch stopped: {reason}")
        self.reason = reason
        self.report = report
        self.cause = cause


class _Batch:
    """The state of one ``write_back_many`` call."""

    def __init__(
        self,
        send: SendWriteback,
        clock: Clock,
        store: Store,
        *,
        on_progress: Callable[[Progress], None] | None,
        fail_fast: bool,
        definitions: Definitions | None = None,
        dry_run: bool = False,
        adaptive: AdaptiveConcurrency | None = None,
    ) -> None:
        self.adaptive = adaptive  # with concurrency="auto": the limit the workers consult
        self.write = adaptive.observed(send) if adaptive is not None else send
        self.store = store
        self.on_progress = on_progress
        self.fail_fast = fail_fast
        self.definitions = definitions
        self.dry_run = dry_run  # decide everything, send nothing: the plan
        self.would_send = self.would_resend = 0
        self.clock = clock
        self.started = self.clock.monotonic()
        self.failed: list[Outcome] = []
        self.unknown: list[Outcome] = []
        self.not_sent: list[Outcome] = []
        self.unrecorded: list[Outcome] = []  # succeeded, but the journal could not record it
        self.skipped: Counter[str] = Counter()
        self.counts: Counter[OutcomeKind] = Counter()
        self.taking = True  # workers take new records
        self.sending_allowed = True  # attempts may go on the wire
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None
        self.in_progress: set[_InFlight] = set()
        self.take_scope: anyio.CancelScope | None = None
        self.take_lock = asyncio.Lock()  # anyio's yields even when free: a turn of the loop a chunk per worker
        self.progress_failed = False
        self.workers = 0
        self.iterator: Iterator[Any] | None = None  # a plain iterable's records, read without awaiting
        self.source: AsyncGenerator[Any, None] | None = None  # an async iterable's
        self.wave: deque[_Ready] = deque()  # admitted with their chunk, intents queued, not yet taken
        self.input_done = False
        self.upcoming: _Chunk | None = None  # the chunk after it, being looked up

    # -- stopping ----------------------------------------------------------------------------

    def halt(self, reason: str) -> None:
        """Take and send nothing more; records not yet on the wire are dropped as not sent."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.taking = self.sending_allowed = False
        if self.take_scope is not None:
            self.take_scope.cancel()
        for state in self.in_progress:
            if not state.sent:
                state.cancel()

    def abandon(self) -> None:
        """Halt, and stop waiting for requests on the wire too (their records become unknown)."""
        self.halt("abandoned by BatchControl.abandon()")
        for state in self.in_progress:
            state.cancel()

    def abort(self, cause: BaseException, reason: str | None = None) -> None:
        """A fatal error: halt, and remember the first cause for :class:`BatchAbortedError`."""
        if self.fatal is None:
            self.fatal = cause
            self.stop_reason = reason or fatal_reason(cause) or str(cause)
        self.halt(self.stop_reason or "")

    # -- the workers ---------------------------------------------------------------------------

    async def run(self, records: Iterable[Any] | AsyncIterable[Any], concurrency: int) -> BatchReport:
        """Each worker loops: take a record, decide and claim it, send it; until the input ends or the batch stops.

        A store that looks records up is given the records in chunks of half
        ``concurrency`` (or of the adaptive limit in force), admitted as waves (read from a
        plain iterable at once, the next chunk looked up while one is taken; an async one is
        awaited record by record), so one read and one commit of the journal serve a chunk;
        without a journal, a worker reads the next record of a plain iterable directly, with
        no lock and no await.
        """
        self.workers = concurrency  # with an adaptive limit: its maximum
        self.store.start(self.journal_failed)
        try:
            if isinstance(records, AsyncIterable):
                self.source = _aiter(records)
                async with contextlib.aclosing(self.source), anyio.create_task_group() as group:
                    for _ in range(concurrency):
                        group.start_soon(self.worker)
            else:
                self.iterator = iter(records)
                async with anyio.create_task_group() as group:
                    for _ in range(concurrency):
                        group.start_soon(self.worker)
            self.release_wave()
            await self.store.flush()
        finally:
            self.release_wave()
            self.forget_upcoming()
            self.store.close()
        return self.report()

    async def worker(self) -> None:
        task = asyncio.current_task()
        assert task is not None  # a worker is a task of the batch's task group
        while True:
            if self.adaptive is None:
                if not await self.take_and_send(task):
                    return
                continue
            async with self.adaptive.slot():  # taken before the record, so none waits unsent in hand
                if not await self.take_and_send(task):
                    return

    async def take_and_send(self, task: asyncio.Task[Any]) -> bool:
        """Take the next record and settle it, or wait until its intent to send is durable,
        send it (in ``task``, the worker's) and settle what came of it; False once there is
        none to take.

        Taking and sending are one coroutine, not two: a frame less a write in flight.
        """
        if not self.taking:
            return False
        if self.iterator is not None and not self.store.looks_up:  # nothing to look up: no lock, no await
            record = self.next_record(self.iterator)
            if record is _END:
                return False
            sending = self.admit(record, None)  # no await between taking and claiming: the read is still true
            if sending is None:
                await anyio.lowlevel.checkpoint()  # a record settled at once must not starve the others
                return True
            record, prepared, decision = sending
            intent = self.store.intend(prepared, record, decision)
        else:
            ready = self.wave.popleft() if self.wave else await self.next_of_wave()
            if ready is None:
                return False
            self.admit_upcoming()
            record, prepared, decision, intent = ready
        state = _InFlight(self, task)
        result: tuple[OutcomeKind, ISalesError | None] | None = None
        self.in_progress.add(state)
        try:
            if intent is not None:
                await intent
            await self.write(prepared.key, prepared.body, on_send=state)
        except _NotSent:
            # A write is retried only when provably not applied, so a refused attempt means not applied.
            result = (OutcomeKind.NOT_SENT, None)
        except JournalError as exc:  # its intent could not be recorded, so it was not sent
            result, intent = (OutcomeKind.NOT_SENT, exc), None
        except ISalesError as exc:
            result = self.classify(exc)
        except asyncio.CancelledError:
            if not state.caught():
                if intent is not None and not state.sent:  # cancelled from outside before it left: put back
                    self.store.unsent(prepared, record, decision)
                raise
        except Exception as exc:  # a bug in one record's processing: that record alone pays
            result = (OutcomeKind.UNKNOWN, _unknown_after(exc)) if state.sent else (OutcomeKind.FAILED, _typed(exc))
        else:
            result = (OutcomeKind.SUCCEEDED, None)
        finally:
            state.active = False
            self.in_progress.discard(state)
        self.settle_sent(state, result, intent is not None, record, prepared, decision)
        return True

    def ready(self, record: Writeback, prepared: PreparedWriteback, decision: Decision) -> _Ready:
        """The record to send, its intent to send queued."""
        return record, prepared, decision, self.store.intend(prepared, record, decision)

    async def next_of_wave(self) -> _Ready | None:
        """The next record of the wave, admitting the next chunk as a wave if this one is spent."""
        async with self.take_lock:
            while not self.wave and self.taking and not self.input_done:
                await self.read_chunk()
                if not self.wave:
                    await anyio.lowlevel.checkpoint()  # a chunk settled at once must not starve the others
            return self.wave.popleft() if self.wave and self.taking else None

    def next_record(self, iterator: Iterator[Any]) -> Any:
        try:
            return next(iterator, _END)
        except Exception as exc:  # the input itself broke: no record's fault, and no more records
            self.input_failed(exc)
            return _END

    async def next_async_record(self, source: AsyncGenerator[Any, None]) -> Any:
        with anyio.CancelScope() as self.take_scope:  # halt() cancels a wait on a slow input
            try:
                return await anext(source, _END)
            except Exception as exc:
                self.input_failed(exc)
            finally:
                self.take_scope = None
        return _END

    def input_failed(self, exc: Exception) -> None:
        self.abort(exc, f"reading the records failed: {type(exc).__name__}: {exc}")

    async def read_chunk(self) -> None:
        """Admit the next chunk of records as one wave: read, prepared, looked up at once,
        decided and claimed, the intents of those to send queued together (one commit).

        From a plain iterable, the chunk after it is read and looked up at once too, while
        this one is taken, so a worker rarely waits for the journal to answer.
        """
        if self.source is not None:
            taken, rows = await self.next_async_chunk(self.source)
        else:
            (taken, rows), self.upcoming = self.upcoming or self.next_chunk(), None
        if rows is not None:
            with contextlib.suppress(JournalError):
                await rows
        self.admit_chunk(taken, rows)

    def admit_upcoming(self) -> None:
        """Admit the chunk read ahead as the next wave once the wave runs low, if its rows are in:
        its intents are committed while what is left of this wave is sent."""
        if not self.taking or self.upcoming is None:
            return
        taken, rows = self.upcoming
        # With as many in flight, a wave under the bound keeps those in doubt under twice it.
        if len(self.wave) + len(taken) >= self.in_flight_bound():
            return
        if rows is not None and rows.done() and not rows.cancelled():
            self.upcoming = None
            self.admit_chunk(taken, rows)

    def admit_chunk(self, taken: list[_Taken], rows: asyncio.Future[dict[str, JournalRow]] | None) -> None:
        """Decide and claim a chunk's records at once (``rows``: what the journal knew of
        them), queueing the intents of those to send: the next wave."""
        if not taken:
            self.input_done = True
        if rows is not None:
            try:
                self.store.begin_chunk(rows.result())
            except JournalError as exc:  # nothing of the chunk was taken: it is in no count
                self.abort(exc)
                return
        for record, prepared in taken:
            sending = self.admit(record, prepared)
            if sending is not None:
                self.wave.append(self.ready(*sending))
        if taken and self.iterator is not None and self.store.looks_up:
            self.upcoming = self.next_chunk()

    def in_flight_bound(self) -> int:
        """How many records may be in flight now: the adaptive limit in force, else ``workers``."""
        return self.adaptive.limit if self.adaptive is not None else self.workers

    def next_chunk(self) -> _Chunk:
        """Records read and prepared, and (for a store that looks up) the future rows of their keys."""
        records: list[Any] = []
        size = (self.in_flight_bound() + 1) // 2  # two waves ahead of the workers hold fewer than the bound
        if self.iterator is not None:
            while len(records) < size and (record := self.next_record(self.iterator)) is not _END:
                records.append(record)
        taken: list[_Taken] = [(record, _prepared(record)) for record in records]
        keys = [prepared.key for _, prepared in taken if isinstance(prepared, PreparedWriteback)]
        return taken, self.store.look_up(keys) if keys and self.store.looks_up else None

    async def next_async_chunk(self, source: AsyncGenerator[Any, None]) -> _Chunk:
        """One record of an async input (waiting for more would hold back the first): its own chunk."""
        record = await self.next_async_record(source)
        if record is _END:
            return [], None
        prepared = _prepared(record)
        if isinstance(prepared, PreparedWriteback) and self.store.looks_up:
            return [(record, prepared)], self.store.look_up([prepared.key])
        return [(record, prepared)], None

    def release_wave(self) -> None:
        """The batch stopped before sending what is left of the wave: not sent, its rows put back."""
        while self.wave:
            record, prepared, decision, intent = self.wave.popleft()
            if intent is not None and not _failed(intent):
                self.store.unsent(prepared, record, decision)
            self.settle(Outcome(record.data_id, record, OutcomeKind.NOT_SENT, key=prepared.key), None)

    def forget_upcoming(self) -> None:
        """The batch is over: a chunk read ahead is never taken, and its rows never wanted."""
        if self.upcoming is not None and self.upcoming[1] is not None:
            rows = self.upcoming[1]
            if rows.done() and not rows.cancelled():
                rows.exception()  # retrieved: no "never retrieved" warning for a failed read
            rows.cancel()
        self.upcoming = None

    def admit(self, record: Any, prepared: PreparedWriteback | Exception | None) -> _Sending | None:
        """Prepare, decide and check one record: what to send, or ``None`` if it settled here.

        All synchronous, so the decision and the claim that follows it are never
        interleaved with another worker's. A dry run counts what it would send instead.
        """
        data_id = getattr(record, "data_id", "")
        if prepared is None:
            prepared = _prepared(record)
        if isinstance(prepared, Exception):  # ValidationError, or a record that breaks the checks themselves
            self.settle(Outcome(data_id, _as_record(record), OutcomeKind.FAILED, _typed(prepared)), None)
            return None
        key = prepared.key
        if not self.sending_allowed:  # taken just as the batch stopped
            self.settle(Outcome(data_id, record, OutcomeKind.NOT_SENT, key=key), None)
            return None
        try:
            refusal = self.refusal(prepared)
            decision = self.store.decide(prepared, defined_now=self.definitions is not None and refusal is None)
            if decision.skip is not None:
                refusal = None  # skipped: what the tenant defines does not matter
            if decision.skip != DUPLICATE:
                self.store.claim(prepared, record, decision, sending=refusal is None and decision.skip is None)
        except Exception as exc:  # a record the journal cannot store (a bug): it fails alone, unsent
            self.settle(Outcome(data_id, record, OutcomeKind.FAILED, _typed(exc), key), None)
            return None
        if decision.skip == DUPLICATE:
            self.settle(Outcome(data_id, record, OutcomeKind.FAILED, DuplicateRecordError(key), key), None)
        elif decision.skip is not None:
            self.skipped[decision.skip] += 1
            self.report_progress()
        elif refusal is not None:
            # Not applied, and refused only for what the tenant defines today: a re-run checks it
            # again. A new row says so (not sent); a known one keeps what the journal knew.
            self.settle(
                Outcome(data_id, record, OutcomeKind.FAILED, refusal, key),
                None if decision.known else Status.NOT_SENT,
            )
        elif self.dry_run:
            self.would_send += 1
            self.would_resend += decision.known
        else:
            return record, prepared, decision
        return None

    def refusal(self, prepared: PreparedWriteback) -> UndefinedResultError | None:
        """Why the tenant's definitions refuse the record, if they were asked for and do."""
        if self.definitions is None:
            return None
        return self.definitions.refusal(prepared.body["busiResult"], prepared.body.get("subStatus"))

    def settle_sent(
        self,
        state: _InFlight,
        result: tuple[OutcomeKind, ISalesError | None] | None,
        intended: bool,
        record: Writeback,
        prepared: PreparedWriteback,
        decision: Decision,
    ) -> None:
        """Settle a record that was to be sent, from ``result`` (``None``: halted or abandoned).

        ``intended``: its intent to send was recorded (and must be taken back if it never left).
        """
        if result is None:  # cancelled by halt() (not yet sent) or abandon()
            result = (OutcomeKind.UNKNOWN, _abandoned()) if state.sent else (OutcomeKind.NOT_SENT, None)
        elif state.cancelled:  # its cancellation was swallowed on the way: not left pending (3.11+)
            state.caught()
        if intended and not state.sent:
            self.store.unsent(prepared, record, decision)
        kind, error = result
        self.settle(
            Outcome(record.data_id, record, kind, error, prepared.key),
            _journal_status(kind, error, state.sent, decision),
        )

    def journal_failed(self, error: JournalError, successes: list[Outcome]) -> None:
        """A group of journal writes failed: the batch stops; the successes it held are reported all the same."""
        self.abort(error)
        self.unrecorded.extend(successes)

    def classify(self, error: ISalesError) -> tuple[OutcomeKind, ISalesError]:
        if isinstance(error, OutcomeUnknownError):
            return OutcomeKind.UNKNOWN, error
        if fatal_reason(error) is not None:
            self.abort(error)
            return OutcomeKind.NOT_SENT, error  # 401, TLS, unreachable: provably not applied
        return OutcomeKind.FAILED, error

    def settle(self, outcome: Outcome, status: Status | None) -> None:
        """Count, file and journal one outcome; ``status`` is what the journal records (``None``: nothing)."""
        if outcome.error is not None:
            _drop_tracebacks(outcome.error)
        self.counts[outcome.kind] += 1
        if status is not None:
            self.store.finish(outcome, status)
        if outcome.kind is OutcomeKind.FAILED:
            self.failed.append(outcome)
        elif outcome.kind is OutcomeKind.UNKNOWN:
            self.unknown.append(outcome)
        elif outcome.kind is OutcomeKind.NOT_SENT:
            self.not_sent.append(outcome)
        if self.fail_fast and outcome.kind in (OutcomeKind.FAILED, OutcomeKind.UNKNOWN) and self.taking:
            self.taking = False
            self.stop_reason = self.stop_reason or "fail_fast: a record failed"
        if self.on_progress is not None:
            self.report_progress()

    def report_progress(self) -> None:
        if self.on_progress is None:
            return
        c = self.counts
        progress = Progress(
            c[OutcomeKind.SUCCEEDED],
            c[OutcomeKind.FAILED],
            c[OutcomeKind.UNKNOWN],
            sum(self.skipped.values()),
            self.clock.monotonic() - self.started,
            c[OutcomeKind.NOT_SENT],
            self.adaptive.limit if self.adaptive is not None else self.workers,
        )
        try:
            self.on_progress(progress)
        except Exception:  # a broken progress display must not break the batch it observes
            if not self.progress_failed:
                logger.exception("on_progress callback %r failed; its later failures are not logged", self.on_progress)
            self.progress_failed = True

    def report(self) -> BatchReport:
        try:
            succeeded = self.store.succeeded_view(self.unrecorded)
        except JournalError as exc:  # the journal cannot even be counted: report what memory holds
            self.abort(exc)
            succeeded = self.unrecorded
        return BatchReport(
            succeeded=succeeded,
            failed=self.failed,
            unknown=self.unknown,
            skipped=dict(self.skipped),
            elapsed=self.clock.monotonic() - self.started,
            stopped_early=self.stop_reason is not None,
            not_sent=self.not_sent,
            stop_reason=self.stop_reason,
            journal_run=self.store.run,
            concurrency=self.adaptive.report() if self.adaptive is not None else ConcurrencyReport.fixed(self.workers),
        )


#: A record taken, with its preparation when it was prepared with its chunk (``None``: not yet).
_Taken = tuple[Any, PreparedWriteback | Exception | None]
#: Records read and prepared, and the rows of their keys to come (``None``: nothing to look up).
_Chunk = tuple[list[_Taken], "asyncio.Future[dict[str, JournalRow]] | None"]
#: A record to send, prepared, and what its store decided.
_Sending = tuple[Writeback, PreparedWriteback, Decision]
#: ... and its intent to send, queued with its wave (``None``: a store that records none).
_Ready = tuple[Writeback, PreparedWriteback, Decision, "Awaitable[None] | None"]


def _failed(intent: Awaitable[None]) -> bool:
    """Whether the intent is known not to have been recorded (its error is retrieved)."""
    if not isinstance(intent, asyncio.Future) or not intent.done():
        return False
    return intent.cancelled() or intent.exception() is not None


def _prepared(record: object) -> PreparedWriteback | Exception:
    try:
        return prepare(record)
    except Exception as exc:  # the record's own failure, reported when it is taken
        return exc


def _as_record(record: object) -> Writeback | None:
    return record if isinstance(record, Writeback) else None


def _typed(error: Exception) -> ISalesError:
    """``error`` itself when it is one of ours, else an :class:`UnexpectedError` it caused."""
    if isinstance(error, ISalesError):
        return error
    unexpected = UnexpectedError(f"an unexpected {type(error).__name__} before sending: {error}; not sent")
    unexpected.__cause__ = error
    return unexpected


def _unknown_after(error: Exception) -> OutcomeUnknownError:
    unknown = OutcomeUnknownError(
        f"callBusiResult: an unexpected {type(error).__name__} after the request was sent ({error}); not resent",
        endpoint="callBusiResult",
    )
    unknown.__cause__ = error
    return unknown


def _abandoned() -> OutcomeUnknownError:
    return OutcomeUnknownError(
        "callBusiResult: abandoned while on the wire when the batch was stopped; it may have been applied",
        endpoint="callBusiResult",
    )


def _journal_status(kind: OutcomeKind, error: BaseException | None, sent: bool, decision: Decision) -> Status | None:
    """What the journal records for an outcome; ``None`` leaves the claimed row as it is.

    A record an earlier run took keeps its row (state and payload) unless this run sent
    it: what was applied, failed or left in doubt with the earlier payload is still so.
    A record that was in doubt before this run stays in doubt unless this run got a
    definite answer: a resend that provably did not happen says nothing about the first.
    """
    if decision.known and not sent:
        return None
    if kind is OutcomeKind.SUCCEEDED:
        return Status.SUCCEEDED
    if kind is OutcomeKind.UNKNOWN:
        return Status.UNKNOWN
    if kind is OutcomeKind.NOT_SENT and not sent:
        return None  # still queued (or still in doubt from before): a re-run decides again
    if kind is OutcomeKind.NOT_SENT:
        status = Status.NOT_SENT
    else:
        assert error is not None  # a failure always carries its error
        status = _failure_status(error)
    return Status.UNKNOWN if status is Status.NOT_SENT and decision.in_doubt else status


async def write_back_many(
    records: Iterable[Writeback] | AsyncIterable[Writeback],
    *,
    send: SendWriteback,
    clock: Clock,
    fetch_definitions: Callable[[], Awaitable[Definitions]],
    concurrency: int | Literal["auto"] = 10,
    max_concurrency: int | None = None,
    journal: Journal | str | PathLike[str] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    fail_fast: bool = False,
    retry_failed: bool = False,
    resend_unknown: bool = False,
    retry_unknown: bool | None = None,
    control: BatchControl | None = None,
    check_definitions: bool = False,
) -> BatchReport:
    """Write back many business results concurrently; every record taken is reported once.

    Args:
        records: a sync or async iterable of :class:`~isales_async.Writeback`, read
            only as workers free up (at most ``concurrency`` records read ahead; with a
            journal and a plain iterable, two chunks of half ``concurrency``, or of the
            ``"auto"`` limit in force, each looked up in the journal at once).
        concurrency: records in flight at once (the client's ``max_concurrency``
            still bounds requests across everything it does), or ``"auto"``: start at
            2, add one per window of successes while latency holds and no 429/503
            arrives, halve on a 429, a 503 (retried ones too) or a latency jump (AIMD);
            ``report.concurrency`` and ``Progress.concurrency`` show the limit.
        max_concurrency: with ``concurrency="auto"``, the highest limit (1 to 1000,
            default :data:`DEFAULT_MAX_CONCURRENCY`); at most this many records are
            read ahead.
        journal: an SQLite file path (or :class:`~isales_async.Journal`) recording each
            record's fate and payload fingerprint; held by this batch alone while it
            runs (:class:`~isales_async.JournalLockedError` otherwise). A re-run with
            the same journal skips what was applied with the same payload, sends what
            changed or never left, and never resends what is in doubt unless asked.
            With a journal, ``report.succeeded`` is read from disk, so memory stays
            flat for millions of records.
        on_progress: called with :class:`~isales_async.Progress` as records settle.
        fail_fast: stop taking new records after the first failure or unknown.
        retry_failed: with a journal, also resend records that failed definitely in an
            earlier run with an unchanged payload (a changed one is always sent).
        resend_unknown: with a journal, resend records an earlier run left in doubt.
        retry_unknown: deprecated alias of ``resend_unknown``.
        control: a :class:`BatchControl` to stop the batch from outside.
        check_definitions: fetch the tenant's business-result definitions once, before
            the batch starts (``resource.definitions()``, cached for a few minutes), and
            refuse, unsent, each record whose ``busi_result`` or ``sub_status`` they do
            not define: it fails alone with an :class:`~isales_async.UndefinedResultError`.
            A refused record is not applied, so a re-run checks it again (against the
            definitions of that day) and sends it once they define it.

    Raises:
        BatchAbortedError: a fatal error (see :func:`fatal_reason`) stopped the batch;
            ``.report`` has every record taken so far, those never sent in ``not_sent``.
        JournalError: the journal could not be opened or locked; nothing was sent.
        DefinitionsUnavailableError: ``check_definitions`` and the definitions could not
            be fetched; the batch did not start (no record taken, no journal run begun).

    Any one bad record (invalid, a duplicate dataId, ``0200033``, ``0200034``, even an
    unexpected exception while processing it) fails alone; a write of unknown fate is
    reported unknown and not resent.

    The engine takes what it needs as arguments (``client.business_results.write_back_many``
    passes them): ``send`` one writeback, the ``clock``, and ``fetch_definitions``.
    """
    workers = check_concurrency(concurrency, max_concurrency)
    if retry_unknown is not None:
        warnings.warn("retry_unknown is deprecated: use resend_unknown", DeprecationWarning, stacklevel=3)
        resend_unknown = resend_unknown or retry_unknown
    if journal is not None and not isinstance(journal, Journal):
        Journal.check(journal)  # a journal the run cannot use costs no request
    # Fetched before the journal is opened: a batch that cannot start leaves the journal as it was.
    definitions = await fetch_definitions() if check_definitions else None

    async def run(store: Store) -> BatchReport:
        adaptive = AdaptiveConcurrency(clock, workers) if concurrency == "auto" else None
        batch = _Batch(
            send, clock, store, on_progress=on_progress, fail_fast=fail_fast, definitions=definitions, adaptive=adaptive
        )
        return await _run_batch(batch, records, workers, control)

    async def run_journaled(opened: Journal) -> BatchReport:
        opened.begin_run()
        try:
            return await run(JournalStore(opened, retry_failed=retry_failed, resend_unknown=resend_unknown))
        finally:
            opened.end_run()

    if journal is None:
        return await run(Store())
    if isinstance(journal, Journal):
        return await run_journaled(journal)
    with Journal(journal) as opened:
        return await run_journaled(opened)


#: The highest limit of ``concurrency="auto"`` when ``max_concurrency`` is not given.
DEFAULT_MAX_CONCURRENCY = 50


def check_concurrency(concurrency: int | str, max_concurrency: int | None) -> int:
    """The number of workers ``concurrency`` and ``max_concurrency`` ask for, or the
    :class:`ValidationError` naming the one that is wrong."""
    if concurrency == "auto":
        if max_concurrency is None:
            return DEFAULT_MAX_CONCURRENCY
        return check_int_range("max_concurrency", max_concurrency, 1, MAX_CONCURRENCY_BOUND)
    if isinstance(concurrency, str):
        raise ValidationError("concurrency", f"must be an integer of at least 1 or 'auto', got {concurrency!r}")
    check_int_range("concurrency", concurrency, 1)
    if max_concurrency is not None:
        raise ValidationError("max_concurrency", "applies only with concurrency='auto'")
    return concurrency


async def _run_batch(
    batch: _Batch, records: Iterable[Any] | AsyncIterable[Any], concurrency: int, control: BatchControl | None
) -> BatchReport:
    if control is not None:
        control._batch = batch
        if control.stopping:
            batch.halt("stopped by BatchControl.stop() before it began")
    try:
        report = await batch.run(records, concurrency)
    finally:
        if control is not None:
            control._batch = None
    if batch.fatal is not None:
        raise BatchAbortedError(report.stop_reason or "", report=report, cause=batch.fatal) from batch.fatal
    return report


async def plan_write_back(
    records: Iterable[Writeback] | AsyncIterable[Writeback],
    *,
    send: SendWriteback,
    clock: Clock,
    fetch_definitions: Callable[[], Awaitable[Definitions]],
    concurrency: int | Literal["auto"] = 10,
    max_concurrency: int | None = None,
    journal: Journal | str | PathLike[str] | None = None,
    fail_fast: bool = False,
    retry_failed: bool = False,
    resend_unknown: bool = False,
    check_definitions: bool = False,
) -> WritebackPlan:
    """What :func:`write_back_many` would do with these records and options, sending nothing.

    The plan is the batch itself with its sending left out: every record is prepared,
    decided against the journal and checked against the definitions by the same code,
    so a run started next (with the same journal, records and options) sends, skips and
    refuses what the plan says, unless the journal or the tenant changes in between.

    It takes the options of :func:`write_back_many` that change what a run does, and
    refuses the values a run refuses.

    Args:
        concurrency: checked as a run checks it (``max_concurrency`` too); a plan has
            nothing on the wire, so it decides the records one by one, in order.
        journal: the journal a run would use, read as the run would find it once opened
            (:meth:`Journal.snapshot`): no lock, no write, no side file; a missing file is
            a journal that knows nothing yet, where a run could create it.
        fail_fast: stop at the first record refused, as a run stops at its first failure;
            the records after it are in no count (a run would not take them). A run may
            also stop at a failure the server reports, which no plan can foresee.
        check_definitions: as for :func:`write_back_many`; the definitions are fetched
            (or taken from the client's cache), and only they are.

    Raises:
        ValidationError: an option a run refuses (``concurrency`` below 1).
        DefinitionsUnavailableError: ``check_definitions`` and the definitions could not be fetched.
        JournalError: the journal is one a run refuses to open, or cannot be read.
        BatchAbortedError: reading the records or the journal failed midway (``.report``
            has the refusals and skips so far).
    """
    check_concurrency(concurrency, max_concurrency)
    definitions = await fetch_definitions() if check_definitions else None

    async def run(opened: Journal | None) -> WritebackPlan:
        store = PlanStore(opened, retry_failed=retry_failed, resend_unknown=resend_unknown)
        batch = _Batch(send, clock, store, on_progress=None, fail_fast=fail_fast, definitions=definitions, dry_run=True)
        report = await _run_batch(batch, records, 1, None)  # nothing waits on the wire: one worker keeps the order
        return WritebackPlan(
            batch.would_send, batch.would_resend, report.skipped, report.failed, report.elapsed, report.stop_reason
        )

    if journal is None or isinstance(journal, Journal):
        return await run(journal)
    opened = Journal.snapshot(journal)
    try:
        return await run(opened)
    finally:
        if opened is not None:
            opened.close()
