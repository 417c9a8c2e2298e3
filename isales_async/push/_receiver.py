"""Receiving pushed outbound call results (the campaign's ``callBackUrl``).

CC-iSales POSTs a JSON list of call results, without an Authorization header, and
pushes again (at once, then every 10 minutes, at most 6 times) unless answered 200.
So the receiver answers 200 only once the user's callback has taken the batch, answers
non-200 when it failed, timed out or the receiver is full or closing (the server's
re-push is the retry), and drops call IDs already processed within a window, or
repeated inside one push. Which call IDs were processed, and which are being processed,
lives in a :class:`~isales_async.receivers.DedupeStore` (this process's memory by
default; a SQLite file or Redis to share it between workers): a call ID is claimed there
before its callback runs, so it reaches the callback once across all the workers that
share the store; a re-push that finds another worker's claim is answered 503. A
malformed record cannot become well formed by being pushed again, so it is handed to
``on_invalid`` and does not hold back the push's good records.

The parsing is pure (``push._parsing``); the stores are in ``push._dedupe*``;
:class:`PushReceiver` adds the claims, the bounded queue, the workers and their deadlines;
``push._adapters`` fits it to aiohttp and ASGI.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hmac
import inspect
import ipaddress
import logging
import secrets
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence

import attrs

from .._clock import Clock, SystemClock
from .._errors import PushFormatError, ValidationError
from .._models import CallResult
from .._validation import check_clock
from ._dedupe import Claim, DedupeStore, MemoryDedupeStore, check_seconds
from ._parsing import InvalidPushRecord, log_invalid_record, parse_push_batch

__all__ = ["PushReceiver", "PushResponse"]

logger = logging.getLogger("isales_async.push")


#: The first and the longest wait between two attempts to record a processed batch the store failed to hear.
RECORD_RETRY_FIRST, RECORD_RETRY_MAX = 1.0, 30.0
#: How long a claim outlives the callback timeout: the time to cancel the callback and release it.
CLAIM_GRACE = 60.0

PushCallback = Callable[[Sequence[CallResult]], Awaitable[None]]
InvalidRecordHandler = Callable[[InvalidPushRecord], None]


@attrs.frozen
class PushResponse:
    """What to answer the pushing server."""

    status: int
    message: str


class _Outcome(enum.Enum):
    """What became of one queued batch, and the answer it earns."""

    PROCESSED = PushResponse(200, "ok")
    FAILED = PushResponse(500, "the batch was not processed; push again")
    TIMED_OUT = PushResponse(503, "the batch was not processed in time; push again")
    CLOSED = PushResponse(503, "the receiver is shutting down; push again")
    BUSY = PushResponse(503, "busy: push again later")
    HELD = PushResponse(503, "another worker is processing these call IDs; push again later")
    UNAVAILABLE = PushResponse(503, "the de-duplication store is unreachable; push again later")


#: The answers of one push's fresh call IDs, each call ID to its outcome, once all are known.
_Answers = asyncio.Future[dict[str, _Outcome]]


@attrs.define
class _Job:
    results: list[CallResult]
    token: str  # of the claims on the results' call IDs
    done: asyncio.Future[_Outcome]


_WORST_FIRST = (
    _Outcome.FAILED,
    _Outcome.TIMED_OUT,
    _Outcome.CLOSED,
    _Outcome.BUSY,
    _Outcome.HELD,
    _Outcome.UNAVAILABLE,
)
#: The answer for a call ID the store did not let us take (None: the store failed).
_ANSWER_OF_CLAIM: dict[Claim | None, _Outcome] = {
    Claim.PROCESSED: _Outcome.PROCESSED,
    Claim.HELD: _Outcome.HELD,
    None: _Outcome.UNAVAILABLE,
}


class PushReceiver:
    """Validates pushes, hands each batch to ``callback`` through a bounded queue, and says
    what to answer; framework adapters (``aiohttp_handler``, ``AsgiPushApp``) call :meth:`handle`.

    Args:
        callback: ``async def callback(results)``; a batch counts as accepted once it returns.
        queue_size: batches waiting for a worker; beyond it a push is answered 503.
        workers: callbacks running at once; they start with the first push.
        dedupe_window: seconds a processed ``callId`` is remembered; re-pushes within it are dropped.
        dedupe_store: where processed and claimed call IDs are kept (default: a
            :class:`~isales_async.receivers.MemoryDedupeStore` on ``clock``, for one
            process). While it is unreachable every push is answered 503 and nothing is
            processed. A claim lasts ``callback_timeout`` plus :data:`CLAIM_GRACE`
            seconds, even past a shorter window (the window when there is no
            timeout), so a worker that dies holding one frees it then. :meth:`aclose` closes it.
        token: a shared secret expected as ``?token=`` in the callback URL (not empty).
        allowed_ips: addresses or networks allowed to push (IPv4 ones also match their
            IPv4-mapped IPv6 form, as dual-stack servers report them).
        on_invalid: called with each :class:`InvalidPushRecord` of a push once its good
            records are taken (default: :func:`log_invalid_record`). It runs inside the
            request, so keep it quick; if it raises, the push is answered 500 and the
            server's re-push hands the invalid records to it again.
        callback_timeout: seconds a callback may run (``None``: no limit). When it
            passes, the callback is cancelled, the push is answered 503 (the server
            pushes again) and its call IDs are not marked processed.
        max_waiters: pushes allowed to wait for a batch of the same call IDs already in
            progress (re-pushes); beyond it a push is answered 503 at once.
        clock: replaces the real clock (tests); the callback timeout and the drain of
            :meth:`aclose` run on it.

    With neither ``token`` nor ``allowed_ips`` anyone who can reach the URL can push;
    that is allowed (the API signs nothing) but warned about.
    """

    def __init__(
        self,
        callback: PushCallback,
        *,
        queue_size: int = 100,
        workers: int = 4,
        dedupe_window: float = 24 * 3600,
        dedupe_store: DedupeStore | None = None,
        token: str | None = None,
        allowed_ips: Iterable[str] | None = None,
        on_invalid: InvalidRecordHandler = log_invalid_record,
        callback_timeout: float | None = 60.0,
        max_waiters: int = 100,
        clock: Clock | None = None,
    ) -> None:
        self._callback = _checked_callback(callback)
        self._abandoned: set[asyncio.Future[None]] = set()  # timed-out callbacks that have not ended yet
        self._keepers: set[asyncio.Future[None]] = set()  # renewing the claims of those callbacks
        self._queue: asyncio.Queue[_Job] | None = None
        self._queue_size = _at_least("queue_size", queue_size, 1)
        self._workers_wanted = _at_least("workers", workers, 1)
        self._workers: list[asyncio.Task[None]] = []
        self._window = check_seconds("dedupe_window", dedupe_window)
        self._pending: dict[str, _Answers] = {}  # each call ID in progress here, to the answers it will be in
        self._intakes: set[asyncio.Future[None]] = set()  # claims being taken
        self._settling: set[asyncio.Future[None]] = set()  # batches whose timed-out callback ended, being recorded
        self._unrecorded: dict[asyncio.Future[None], tuple[list[str], str]] = {}  # processed, the store not told yet
        self._token = _checked_token(token)
        self._networks = _networks(allowed_ips) if allowed_ips is not None else None
        if inspect.iscoroutinefunction(on_invalid):
            raise ValidationError("on_invalid", "must be a plain function: it runs inside the request")
        self._on_invalid = on_invalid
        self._callback_timeout = (
            None if callback_timeout is None else check_seconds("callback_timeout", callback_timeout)
        )
        # Not capped at the window: a claim that expired while its callback still ran would
        # let another worker's re-push run the same call IDs beside it.
        self._claim_ttl = self._window if callback_timeout is None else callback_timeout + CLAIM_GRACE
        self._max_waiters = _at_least("max_waiters", max_waiters, 0)
        self._waiters = 0
        self._closed = False
        check_clock("clock", clock)
        self._clock = clock or SystemClock()
        self._store: DedupeStore = MemoryDedupeStore(self._clock) if dedupe_store is None else dedupe_store
        if token is None and self._networks is None:
            warnings.warn(
                "PushReceiver has neither a token nor an IP allow-list: anyone who can reach it can push", stacklevel=2
            )

    def authorized(self, token: str | None, client_ip: str | None) -> bool:
        """Whether a push with this URL token from this address may be processed."""
        if self._token is not None and not hmac.compare_digest((token or "").encode(), self._token.encode()):
            return False
        if self._networks is not None:
            return _address_allowed(client_ip, self._networks)
        return True

    async def handle(self, body: bytes, *, token: str | None = None, client_ip: str | None = None) -> PushResponse:
        """Process one push and return what to answer."""
        if not self.authorized(token, client_ip):
            return PushResponse(403, "forbidden")
        if self._closed:
            return _Outcome.CLOSED.value
        try:
            batch = parse_push_batch(body)
        except PushFormatError as exc:
            return PushResponse(400, str(exc))
        fresh, in_progress = self._split(batch.results)
        if in_progress and self._waiters >= self._max_waiters:
            return PushResponse(503, "too many pushes wait for batches in progress; push again later")
        answer = await self._wait({**in_progress, **self._take(fresh)}, count_as_waiter=bool(in_progress))
        if answer.status == 200 and batch.invalid:
            return self._report_invalid(batch.invalid)
        return answer

    def _split(self, results: Sequence[CallResult]) -> tuple[list[CallResult], dict[str, _Answers]]:
        """The results to claim, and the call IDs already in progress in this process, with
        the answers to wait for. Drops the repeats inside this push."""
        fresh: list[CallResult] = []
        in_progress: dict[str, _Answers] = {}
        seen = set()
        for result in results:
            call_id = result.call_id or ""
            if call_id in seen:
                continue
            seen.add(call_id)
            pending = self._pending.get(call_id)
            if pending is not None:
                in_progress[call_id] = pending
            else:
                fresh.append(result)
        return fresh, in_progress

    def _take(self, fresh: list[CallResult]) -> dict[str, _Answers]:
        """Mark ``fresh`` in progress here and start claiming it; return its call IDs, with
        the answers to wait for.

        The claim runs in a task of its own: a pusher that goes away must not cancel the
        claim that other pushes of the same call IDs now wait on.
        """
        if not fresh:
            return {}
        answers: _Answers = asyncio.get_running_loop().create_future()
        taking = dict.fromkeys((result.call_id or "" for result in fresh), answers)
        self._pending.update(taking)
        intake = asyncio.ensure_future(self._claim_and_queue(fresh, answers))
        self._intakes.add(intake)
        intake.add_done_callback(self._intakes.discard)
        return taking

    async def _claim_and_queue(self, fresh: list[CallResult], answers: _Answers) -> None:
        """Claim the call IDs in the store and queue a batch of those taken; answer the others."""
        call_ids = [result.call_id or "" for result in fresh]
        token = secrets.token_hex(16)
        try:
            found = dict(zip(call_ids, await self._store.claim(call_ids, token, self._claim_ttl), strict=True))
        except Exception:
            logger.exception("the de-duplication store %r failed to claim a push; answering 503", self._store)
            found = {}
        outcomes = {}
        for call_id in call_ids:
            claim = found.get(call_id)
            if claim is not Claim.TAKEN:
                self._pending.pop(call_id, None)
                outcomes[call_id] = _ANSWER_OF_CLAIM.get(claim, _Outcome.UNAVAILABLE)
        taken = [result for result in fresh if found.get(result.call_id or "") is Claim.TAKEN]
        if not taken:
            answers.set_result(outcomes)
            return
        job = _Job(taken, token, asyncio.get_running_loop().create_future())
        job.done.add_done_callback(functools.partial(_answer_taken, answers, outcomes, job))
        if self._closed:
            await self._settle(job, _Outcome.CLOSED)
            return
        try:
            self._ensure_workers().put_nowait(job)
        except asyncio.QueueFull:
            await self._settle(job, _Outcome.BUSY)

    async def _wait(self, waits: dict[str, _Answers], *, count_as_waiter: bool) -> PushResponse:
        if not waits:
            return _Outcome.PROCESSED.value
        self._waiters += count_as_waiter
        try:
            # asyncio.wait, not gather: a pusher that goes away must not cancel the
            # futures other pushes of the same call IDs wait on.
            await asyncio.wait(set(waits.values()))
        finally:
            self._waiters -= count_as_waiter
        outcomes = {answers.result()[call_id] for call_id, answers in waits.items()}
        return next((o.value for o in _WORST_FIRST if o in outcomes), _Outcome.PROCESSED.value)

    def _report_invalid(self, invalid: Sequence[InvalidPushRecord]) -> PushResponse:
        failed = 0
        for record in invalid:
            try:
                self._on_invalid(record)
            except Exception:
                failed += 1
                logger.exception(
                    "on_invalid failed on pushed record %d; answering 500 so the server pushes again", record.index
                )
        if failed:
            return PushResponse(500, f"{failed} invalid records were not taken; push again")
        return _Outcome.PROCESSED.value

    def _ensure_workers(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        if not self._workers:
            self._workers = [asyncio.ensure_future(self._work(self._queue)) for _ in range(self._workers_wanted)]
        return self._queue

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            outcome: _Outcome | None = _Outcome.CLOSED  # unless the callback finishes: the worker is being stopped
            try:
                outcome = await self._run(job)
            finally:
                if outcome is not None:
                    await self._settle(job, outcome)
                queue.task_done()

    async def _run(self, job: _Job) -> _Outcome | None:
        """Run the callback on one batch within the callback timeout.

        Returns what became of the batch, or ``None`` when the callback timed out: it is
        then answered 503 at once and left to end on its own, so that a callback that
        ignores its cancellation does not hold the worker (see :meth:`_abandon`).
        """
        try:
            call = asyncio.ensure_future(self._callback(job.results))
        except Exception:  # the callback raised before it awaited anything, or returned no awaitable
            logger.exception("the push callback failed on %d results; answering 500", len(job.results))
            return _Outcome.FAILED
        try:
            if not await self._finishes_in_time(call):
                self._abandon(job, call)
                return None
            await asyncio.wait({call})
        except asyncio.CancelledError:  # the receiver is closing
            call.cancel()
            await asyncio.wait({call})
            raise
        return _outcome_of(call, len(job.results))

    def _abandon(self, job: _Job, call: asyncio.Future[None]) -> None:
        """Answer a timed-out batch 503 and cancel its callback without waiting for it to end.

        Its call IDs stay in progress until it does end, so a re-push meanwhile is
        answered 503 too rather than run beside it; should it still complete the batch,
        the IDs are marked processed then.
        """
        logger.error(
            "the push callback on %d results took over %s s; cancelled, answering 503 so the server pushes again",
            len(job.results),
            self._callback_timeout,
        )
        job.done.set_result(_Outcome.TIMED_OUT)
        call.cancel()
        self._abandoned.add(call)
        keeper = asyncio.ensure_future(self._keep_claimed(job))
        self._keepers.add(keeper)
        keeper.add_done_callback(self._keepers.discard)

        def ended(_: asyncio.Future[None]) -> None:
            self._abandoned.discard(call)
            keeper.cancel()
            outcome = _outcome_of(call, len(job.results))
            logger.warning(
                "the push callback on %d results that timed out has ended: %s", len(job.results), outcome.name.lower()
            )
            settling = asyncio.ensure_future(self._settle(job, outcome))
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)

        call.add_done_callback(ended)

    async def _keep_claimed(self, job: _Job) -> None:
        """Renew a timed-out batch's claims while its callback runs on, so that no other
        worker runs the same call IDs beside it however long it takes to end."""
        call_ids = [result.call_id or "" for result in job.results]
        while True:
            await self._clock.sleep(self._claim_ttl / 3)
            try:
                await self._store.claim(call_ids, job.token, self._claim_ttl)
            except Exception as exc:
                logger.warning(
                    "the de-duplication store %r failed to renew a timed-out batch's claims: %s", self._store, exc
                )

    async def _finishes_in_time(self, call: asyncio.Future[None]) -> bool:
        if self._callback_timeout is None:
            await asyncio.wait({call})
            return True
        timer = asyncio.ensure_future(self._clock.sleep(self._callback_timeout))
        try:
            await asyncio.wait({call, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return call.done()

    async def _settle(self, job: _Job, outcome: _Outcome) -> None:
        """Record a batch's outcome: the store marks its call IDs processed, or releases
        their claims so that a re-push is processed; then they leave "in progress" here,
        and its pushes get their answer unless they already have one."""
        call_ids = [result.call_id or "" for result in job.results]
        try:
            if outcome is _Outcome.PROCESSED:
                await self._store.processed(call_ids, job.token, self._window)
            else:
                await self._store.release(call_ids, job.token)
        except Exception:
            logger.exception(
                "the de-duplication store %r failed to record a batch %s; its claims expire in %s s%s",
                self._store,
                outcome.name.lower(),
                self._claim_ttl,
                "; it is recorded again until the store answers" if outcome is _Outcome.PROCESSED else "",
            )
            if outcome is _Outcome.PROCESSED:
                self._record_later(call_ids, job.token)
        finally:
            for call_id in call_ids:
                self._pending.pop(call_id, None)
            if not job.done.done():
                job.done.set_result(outcome)

    def _record_later(self, call_ids: list[str], token: str) -> None:
        """Keep telling the store that ``call_ids`` were processed until it hears it.

        Meanwhile their claims hold and every re-push of them is answered 503; were the
        claims left to expire instead, a later re-push would run the callback again.
        """
        task = asyncio.ensure_future(self._record_processed(call_ids, token))
        self._unrecorded[task] = (call_ids, token)
        task.add_done_callback(self._unrecorded.pop)

    async def _record_processed(self, call_ids: list[str], token: str) -> None:
        delay = waited = 0.0
        while waited < self._window:  # past the window, nothing is left to remember
            delay = min(max(2 * delay, RECORD_RETRY_FIRST), RECORD_RETRY_MAX)
            await self._clock.sleep(delay)
            waited += delay
            try:
                await self._store.processed(call_ids, token, self._window - waited)
            except Exception as exc:
                logger.debug("the de-duplication store %r still fails to record a batch: %s", self._store, exc)
            else:
                logger.warning("the de-duplication store %r has recorded a batch processed at last", self._store)
                return

    async def _record_unrecorded_once_more(self) -> None:
        """At close: stop retrying, and tell the store once more what it has not heard."""
        pending = list(self._unrecorded.items())
        for task, _ in pending:
            task.cancel()
        await asyncio.gather(*(task for task, _ in pending), return_exceptions=True)
        for _, (call_ids, token) in pending:
            try:
                await self._store.processed(call_ids, token, self._window)
            except Exception:
                logger.exception("the de-duplication store %r failed to record a batch processed at close", self._store)

    async def aclose(self, *, timeout: float = 10.0) -> None:
        """Refuse new pushes, drain the queue for at most ``timeout`` seconds, then stop.

        From the call on, every new push is answered 503 (the server pushes again, to
        this process once it restarts or to another). Batches already queued or running
        are processed while the drain lasts and answered as usual; what is still queued
        or running when it ends is cancelled and answered 503, and its call IDs are not
        marked processed. Then the de-duplication store is closed. Closing twice is
        harmless; a closed receiver stays closed.
        """
        self._closed = True
        if self._intakes:
            await asyncio.wait(set(self._intakes))
        queue = self._queue
        if queue is not None:
            await self._stop_workers(queue, timeout)
        if self._settling:
            await asyncio.wait(set(self._settling))
        for keeper in list(self._keepers):
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        await self._record_unrecorded_once_more()
        await self._store.aclose()

    async def _stop_workers(self, queue: asyncio.Queue[_Job], timeout: float) -> None:
        if self._workers:
            await self._drain(queue, timeout)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._abandoned:
            logger.warning(
                "%d push callbacks that timed out and were cancelled are still running", len(self._abandoned)
            )
        while not queue.empty():
            await self._settle(queue.get_nowait(), _Outcome.CLOSED)
            queue.task_done()

    async def _drain(self, queue: asyncio.Queue[_Job], timeout: float) -> None:
        drained = asyncio.ensure_future(queue.join())
        timer = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({drained, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            timer.cancel()


def _answer_taken(answers: _Answers, outcomes: dict[str, _Outcome], job: _Job, done: asyncio.Future[_Outcome]) -> None:
    """Complete a push's answers with the outcome of the batch of its call IDs it took."""
    outcomes.update(dict.fromkeys((result.call_id or "" for result in job.results), done.result()))
    answers.set_result(outcomes)


def _outcome_of(call: asyncio.Future[None], count: int) -> _Outcome:
    """What a callback that has ended did to its batch of ``count`` results."""
    if call.cancelled():
        return _Outcome.TIMED_OUT
    if call.exception() is not None:
        logger.error(
            "the push callback failed on %d results; answering 500 so the server pushes again",
            count,
            exc_info=call.exception(),
        )
        return _Outcome.FAILED
    return _Outcome.PROCESSED


def _checked_callback(callback: PushCallback) -> PushCallback:
    """The callback, if calling it gives a coroutine: an ``async def`` function, or an
    object whose ``__call__`` is one. A plain function would fail every push inside a worker."""
    if not callable(callback):
        raise ValidationError("callback", f"must be an async function, got {type(callback).__name__}")
    if not (inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(type(callback).__call__)):
        raise ValidationError("callback", f"must be an async function (async def), got the plain callable {callback!r}")
    return callback


def _at_least(field: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(field, f"must be an integer of at least {low}, got {value!r}")
    return value


def _checked_token(token: str | None) -> str | None:
    if token is None:
        return None
    if not isinstance(token, str) or not token.strip():
        # An empty token would silently turn the check off; refusing it makes the choice explicit.
        raise ValidationError("token", "must be a non-empty secret, or None to rely on allowed_ips")
    return token


def _networks(allowed_ips: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(allowed_ips, str):
        raise ValidationError("allowed_ips", f"must be a list of addresses or networks, not one string {allowed_ips!r}")
    networks = []
    for entry in allowed_ips:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError) as exc:
            raise ValidationError("allowed_ips", f"{entry!r} is not an address or network: {exc}") from None
    return networks


def _address_allowed(client_ip: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether the peer address is in an allowed network.

    An IPv4-mapped IPv6 address (``::ffff:10.1.2.3``) is also tried as the IPv4 address it
    carries. A scope id (``fe80::1%eth0``) names an interface, not an address: it is
    ignored in the match.
    """
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in networks)
