"""Receiving pushed outbound call results (the campaign's ``callBackUrl``).

CC-iSales POSTs a JSON list of call results, without an Authorization header, and
pushes again (at once, then every 10 minutes, at most 6 times) unless answered 200.
So the receiver answers 200 only once the user's callback has taken the batch, answers
non-200 when it failed or the queue is full (the server's re-push is the retry), and
drops re-pushes of call IDs already processed within a window.

The parsing and de-duplication here are pure; :class:`PushReceiver` adds the bounded
queue and the workers; ``receivers`` adapts it to aiohttp and ASGI.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence

import attrs
import orjson

from ._clock import Clock, SystemClock
from ._errors import ISalesError
from ._models import CallResult, converter

__all__ = ["PushFormatError", "PushReceiver", "PushResponse", "RecentIds", "parse_push"]

logger = logging.getLogger("isales_async.push")

PushCallback = Callable[[Sequence[CallResult]], Awaitable[None]]


class PushFormatError(ISalesError):
    """A pushed body that is not a JSON list of call-result objects."""


def parse_push(body: bytes) -> list[CallResult]:
    """The pushed call results, or :class:`PushFormatError` saying what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PushFormatError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise PushFormatError(f"the body must be a JSON list of call results, got {type(data).__name__}")
    hook = converter.get_structure_hook(CallResult)
    results = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise PushFormatError(f"item {index} is not a JSON object")
        try:
            result = hook(item, CallResult)
        except Exception as exc:
            raise PushFormatError(f"item {index} is not a call result: {exc!r}") from None
        if not result.call_id:
            raise PushFormatError(f"item {index} has no callId")
        results.append(result)
    return results


class RecentIds:
    """Call IDs processed within the last ``window`` seconds (pure: time is passed in)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: dict[str, float] = {}
        self._order: collections.deque[tuple[float, str]] = collections.deque()

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._seen

    def add(self, call_id: str, now: float) -> None:
        self._seen[call_id] = now
        self._order.append((now, call_id))

    def expire(self, now: float) -> None:
        while self._order and self._order[0][0] <= now - self.window:
            when, call_id = self._order.popleft()
            if self._seen.get(call_id) == when:
                del self._seen[call_id]


@attrs.frozen
class PushResponse:
    """What to answer the pushing server."""

    status: int
    message: str


@attrs.define
class _Job:
    results: list[CallResult]
    done: asyncio.Future[bool]


class PushReceiver:
    """Validates pushes, hands each batch to ``callback`` through a bounded queue, and says
    what to answer; framework adapters (``aiohttp_handler``, ``AsgiPushApp``) call :meth:`handle`.

    Args:
        callback: ``async def callback(results)``; a batch counts as accepted once it returns.
        queue_size: batches waiting for a worker; beyond it a push is answered 503.
        workers: callbacks running at once.
        dedupe_window: seconds a processed ``callId`` is remembered; re-pushes within it are dropped.
        token: a shared secret expected as ``?token=`` in the callback URL.
        allowed_ips: addresses or networks allowed to push.
        clock: replaces the real clock (tests).

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
        token: str | None = None,
        allowed_ips: Iterable[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._callback = callback
        self._queue: asyncio.Queue[_Job] | None = None
        self._queue_size = queue_size
        self._workers_wanted = workers
        self._workers: list[asyncio.Task[None]] = []
        self._recent = RecentIds(dedupe_window)
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._token = token
        self._networks = [ipaddress.ip_network(n, strict=False) for n in allowed_ips] if allowed_ips else None
        self._clock = clock or SystemClock()
        if token is None and self._networks is None:
            warnings.warn(
                "PushReceiver has neither a token nor an IP allow-list: anyone who can reach it can push", stacklevel=2
            )

    def authorized(self, token: str | None, client_ip: str | None) -> bool:
        """Whether a push with this URL token from this address may be processed."""
        if self._token is not None and not hmac.compare_digest((token or "").encode(), self._token.encode()):
            return False
        if self._networks is not None:
            try:
                address = ipaddress.ip_address(client_ip or "")
            except ValueError:
                return False
            return any(address in network for network in self._networks)
        return True

    async def handle(self, body: bytes, *, token: str | None = None, client_ip: str | None = None) -> PushResponse:
        """Process one push and return what to answer."""
        if not self.authorized(token, client_ip):
            return PushResponse(403, "forbidden")
        try:
            results = parse_push(body)
        except PushFormatError as exc:
            return PushResponse(400, str(exc))
        now = self._clock.monotonic()
        self._recent.expire(now)
        fresh, waits = [], []
        for result in results:
            call_id = result.call_id or ""
            if call_id in self._recent:
                continue
            if call_id in self._pending:
                waits.append(self._pending[call_id])
            else:
                fresh.append(result)
        if fresh:
            job = _Job(fresh, asyncio.get_running_loop().create_future())
            try:
                self._ensure_workers().put_nowait(job)
            except asyncio.QueueFull:
                return PushResponse(503, "busy: push again later")
            for result in fresh:
                self._pending[result.call_id or ""] = job.done
            waits.append(job.done)
        outcomes = await asyncio.gather(*waits)
        if all(outcomes):
            return PushResponse(200, "ok")
        return PushResponse(500, "the batch was not processed; push again")

    def _ensure_workers(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        if not self._workers:
            self._workers = [asyncio.ensure_future(self._work(self._queue)) for _ in range(self._workers_wanted)]
        return self._queue

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            ok = False
            try:
                await self._callback(job.results)
                ok = True
                now = self._clock.monotonic()
                for result in job.results:
                    self._recent.add(result.call_id or "", now)
            except Exception:
                logger.exception(
                    "the push callback failed on %d results; answering 500 so the server pushes again", len(job.results)
                )
            finally:
                # Also on cancellation: whoever waits on this batch is answered (500).
                for result in job.results:
                    self._pending.pop(result.call_id or "", None)
                queue.task_done()
                if not job.done.done():
                    job.done.set_result(ok)

    async def aclose(self) -> None:
        """Stop the workers (a batch being processed is cancelled)."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
