"""Admission of a request: when an attempt may go on the wire, and when its time is up.

An attempt waits, in this order, for its route's flow limit (in flight and spacing of
starts), for the client's shared cool-down after a ``Retry-After``, and for a slot of
the client-wide limit; no wait that would outlast the call's deadline is begun. Apart
from these waits, :class:`Deadline` ends an attempt still running when the deadline
passes. The session holds one :class:`Admission` and decides nothing else here.

With :class:`SharedLimits` (``limits=RedisLimits(...)``), the route limits and the
cool-down hold for every process of the tenant: an attempt takes a lease from the
shared backend, and a cool-down this process learns is published to all of them. When
the backend cannot answer, the attempt keeps to this process's own limits instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import math
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import anyio
import attrs

from ._clock import Alarm, Clock, set_alarm
from ._errors import DeadlineExceededError
from ._retry import RetryState
from ._shared_limits import Admit, AdmitKind, busy_delay
from ._validation import check_int_range, check_number, field_check

__all__ = [
    "Admission",
    "Deadline",
    "Deadlines",
    "RouteGate",
    "RouteHold",
    "RouteLimit",
    "SharedLimits",
    "Slots",
    "check_wait",
]


@attrs.frozen
class RouteLimit:
    """A per-endpoint flow limit: ``concurrency`` in flight and at most ``concurrency``
    starts in any window longer than ``interval`` seconds."""

    concurrency: int = attrs.field(validator=field_check(check_int_range, low=1))
    interval: float = attrs.field(validator=field_check(check_number))


def check_wait(endpoint: str, what: str, wait: float, now: float, deadline: float | None) -> None:
    """Refuse a wait that would run past the call's deadline, before sleeping any of it."""
    if deadline is not None and now + wait > deadline:
        raise DeadlineExceededError(
            f"{endpoint}: not sent: {what} ends in {wait:.3g}s, after this call's deadline "
            f"(in {max(0.0, deadline - now):.3g}s)",
            endpoint=endpoint,
            wait=wait,
        )


class RouteGate:
    """A route's flow limit: ``concurrency`` in flight, and start times reserved so that at
    most ``concurrency`` fall in any window longer than ``interval``.

    Each caller reserves its start at once (no lock held while sleeping), so it knows its
    whole wait before sleeping any of it and can refuse one that passes its deadline.
    """

    def __init__(self, limit: RouteLimit, clock: Clock) -> None:
        self._limiter = anyio.CapacityLimiter(limit.concurrency)
        self._starts: collections.deque[float] = collections.deque(maxlen=limit.concurrency)
        self._limit = limit
        self._clock = clock

    @property
    def limit(self) -> RouteLimit:
        return self._limit

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """This process's share of the route's concurrency: a shared backend still never lets
        one process hold more than the limit."""
        return self._limiter

    def reserve(self, endpoint: str, deadline: float | None) -> float:
        """Reserve this process's next start of the route; the seconds to wait for it."""
        now = self._clock.monotonic()
        start = now
        if len(self._starts) == self._limit.concurrency:
            # "More than" the interval: a hair past it, never exactly on it.
            start = max(now, self._starts[0] + self._limit.interval + 0.001)
        check_wait(endpoint, f"the {endpoint} flow limit's spacing", start - now, now, deadline)
        self._starts.append(start)
        return start - now

    async def enter(self, endpoint: str, deadline: float | None) -> None:
        """Take a place in the flow limit and wait for the start reserved; :meth:`leave` gives it back."""
        await self._limiter.acquire()
        try:
            wait = self.reserve(endpoint, deadline)
            if wait > 0:
                await self._clock.sleep(wait)
        except BaseException:
            self._limiter.release()
            raise

    def leave(self) -> None:
        """Give back the place taken by :meth:`enter`."""
        self._limiter.release()


class RouteHold(Protocol):
    """What holds a route's flow limit for one attempt: :meth:`enter` before it goes on the
    wire, :meth:`leave` once it is over (the session's hot path calls them without a
    context manager)."""

    async def enter(self, endpoint: str, deadline: float | None) -> None: ...

    def leave(self) -> None: ...


@runtime_checkable
class SharedLimits(Protocol):
    """Route limits and a cool-down shared by every process of a tenant
    (:class:`~isales_async.RedisLimits`). When the backend cannot answer, :meth:`admit`
    says ``None`` (the caller keeps to its own process's limits) and :meth:`cool_down_left` 0;
    none of them raises for it."""

    async def admit(self, route: str, limit: RouteLimit | None, deadline_left: float | None) -> Admit | None:
        """Take a lease on ``route`` for one attempt (without ``limit``: check the cool-down only)."""
        ...

    async def cool_down_left(self) -> float:
        """Seconds left of the tenant's cool-down."""
        ...

    def release(self, route: str, lease: str) -> None:
        """Give back a lease taken by :meth:`admit`."""
        ...

    def publish_cool_down(self, seconds: float) -> None:
        """Pause every process of the tenant for ``seconds``."""
        ...

    async def aclose(self) -> None:
        """Let go of what the backend holds in the running loop."""
        ...


class Slots:
    """The client-wide limit: ``total`` slots, waiters served first come, first served.

    A freed slot is handed straight to the oldest waiter, so nobody overtakes a queue;
    :meth:`take` is the synchronous fast path when a slot is free and nobody waits. Unlike
    an asyncio semaphore it binds to no event loop (each waiter's future is the running
    loop's) and acquiring a free slot costs no coroutine.
    """

    def __init__(self, total: int) -> None:
        self._free = total
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        """Whether an :meth:`acquire` would wait."""
        return not self._free or bool(self._waiters)

    def take(self) -> bool:
        """Take a slot if one is free and nobody waits for one."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one."""
        if self.take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: the next one in line gets it
            else:
                with contextlib.suppress(ValueError):  # already dropped by release()
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest waiter still waiting, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Admission:
    """The client's flow limits: one client-wide limit of ``max_concurrency`` attempts on
    the wire, a :class:`RouteGate` per limited route, and the shared cool-down that
    ``retry_state`` keeps (the same state the session's retry decisions feed); with
    ``shared``, the route limits and the cool-down are the tenant's (see :class:`SharedLimits`).
    """

    def __init__(
        self,
        max_concurrency: int,
        route_limits: Mapping[str, RouteLimit],
        clock: Clock,
        retry_state: RetryState,
        shared: SharedLimits | None = None,
    ) -> None:
        self._max_concurrency = max_concurrency
        self._clock = clock
        self._retry_state = retry_state
        self._shared = shared
        if shared is not None:
            retry_state.cool_down.listener = shared.publish_cool_down
        # Our own Slots, not anyio's CapacityLimiter: the latter adds an event-loop round
        # trip to every acquire, which measured about 15% of throughput.
        self._limiter = Slots(max_concurrency)
        self._routes = {name: RouteGate(limit, clock) for name, limit in route_limits.items()}

    def renew_limiter(self) -> None:
        """A fresh client-wide limit, for a client reopened in a new event loop (no waiter of
        the old loop is left in line); only while none is held."""
        self._limiter = Slots(self._max_concurrency)

    def route_gate(self, endpoint: str) -> RouteHold | None:
        """What holds ``endpoint``'s flow limit for one attempt, or ``None`` when nothing
        needs holding: in process, the route's :class:`RouteGate` (if it has a limit); with
        :class:`SharedLimits`, a hold of the tenant's limit and cool-down for every route."""
        gate = self._routes.get(endpoint)
        if self._shared is not None:
            return _SharedHold(self._shared, gate, self._clock, self._retry_state)
        return gate

    def try_acquire(self) -> bool:
        """Take a client-wide slot at once if one is free and no cool-down runs (the common
        case, without a coroutine); ``False`` when the caller must :meth:`acquire` instead."""
        return self._retry_state.cool_down_wait(self._clock.monotonic()) == 0 and self._limiter.take()

    async def acquire(self, endpoint: str, deadline: float | None) -> None:
        """Wait out the shared cool-down (or give up if it outlasts ``deadline``), then take a
        client-wide slot, to be given back with :meth:`release`; never hold one while sleeping."""
        while True:
            now = self._clock.monotonic()
            wait = self._retry_state.cool_down_wait(now)
            if wait > 0:
                check_wait(endpoint, "the client's cool-down after a Retry-After", wait, now, deadline)
                await self._clock.sleep(wait)
                continue
            await self._limiter.acquire()
            # A pause may have begun while we queued for the limiter.
            if self._retry_state.cool_down_wait(self._clock.monotonic()) == 0:
                return
            self._limiter.release()

    def release(self) -> None:
        """Give back the client-wide slot taken by :meth:`acquire`."""
        self._limiter.release()

    async def aclose(self) -> None:
        """Let go of the shared backend's connections of the running loop, if there is one."""
        if self._shared is not None:
            await self._shared.aclose()


def _left(deadline: float | None, now: float) -> float | None:
    return None if deadline is None else max(0.0, deadline - now)


class _SharedHold:
    """One attempt's hold of the tenant's flow limit (a lease of the shared backend),
    within this process's own share of it (the route's :class:`RouteGate` limiter)."""

    __slots__ = ("_clock", "_endpoint", "_gate", "_lease", "_retry_state", "_shared")

    def __init__(self, shared: SharedLimits, gate: RouteGate | None, clock: Clock, retry_state: RetryState) -> None:
        self._shared = shared
        self._gate = gate
        self._clock = clock
        self._retry_state = retry_state
        self._endpoint = ""
        self._lease = ""

    async def enter(self, endpoint: str, deadline: float | None) -> None:
        gate = self._gate
        if gate is not None:
            await gate.limiter.acquire()
        try:
            self._lease = await self._take_lease(endpoint, deadline)
        except BaseException:
            if gate is not None:
                gate.limiter.release()
            raise
        self._endpoint = endpoint

    def leave(self) -> None:
        if self._lease:
            self._shared.release(self._endpoint, self._lease)
        if self._gate is not None:
            self._gate.limiter.release()

    async def _take_lease(self, endpoint: str, deadline: float | None) -> str:
        """A lease of the tenant's flow limit once its start has come, or ``""`` when none is
        needed or the backend cannot answer (then this process's own spacing is kept)."""
        gate, shared = self._gate, self._shared
        polls = 0
        while True:
            now = self._clock.monotonic()
            admit = await shared.admit(endpoint, gate.limit if gate else None, _left(deadline, now))
            if admit is None:
                if gate is not None:
                    await self._sleep(gate.reserve(endpoint, deadline))
                return ""
            if admit.kind is AdmitKind.BUSY:
                polls += 1
                await self._sleep(busy_delay(polls, admit.seconds))
            elif admit.kind is AdmitKind.COOLING:
                await self._wait_cool_down(endpoint, admit.seconds, deadline)
            elif admit.kind is AdmitKind.LATE:
                check_wait(endpoint, f"the tenant's {endpoint} flow limit's spacing", admit.seconds, now, deadline)
            elif await self._started(endpoint, admit, deadline):
                return admit.lease

    async def _started(self, endpoint: str, admit: Admit, deadline: float | None) -> bool:
        """Wait for the lease's reserved start; ``False`` (the lease given back) when a
        cool-down began meanwhile, so the attempt is admitted again after it."""
        try:
            if admit.seconds == 0:
                return True
            await self._sleep(admit.seconds)
            left = await self._shared.cool_down_left()
        except BaseException:
            self._shared.release(endpoint, admit.lease)
            raise
        if left > 0:
            self._shared.release(endpoint, admit.lease)
            await self._wait_cool_down(endpoint, left, deadline)
            return False
        return True

    async def _wait_cool_down(self, endpoint: str, seconds: float, deadline: float | None) -> None:
        """Wait out the tenant's cool-down, which this process now keeps too."""
        now = self._clock.monotonic()
        self._retry_state.cool_down.adopt(now, seconds)
        check_wait(endpoint, "the tenant's cool-down after a Retry-After", seconds, now, deadline)
        await self._sleep(seconds)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self._clock.sleep(seconds)


class Deadline:
    """Ends the attempt of ``task`` when the clock passes the call's deadline.

    Made armed by :meth:`Deadlines.watch`, disarmed by :meth:`disarm` when the attempt
    ends. Expiring cancels the task (like ``asyncio.timeout``, on our clock); :meth:`caught`
    then tells that cancellation from any other, which passes through untouched.
    """

    __slots__ = ("_cancelling", "_expired", "_task", "_watcher", "armed")

    def __init__(self, watcher: Deadlines, task: asyncio.Task[object] | None) -> None:
        self._watcher = watcher
        self._task = task
        self._expired = False
        self.armed = True
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        self._cancelling: int = cancelling() if cancelling is not None else 0

    def disarm(self) -> None:
        """The attempt is over: the deadline will not end it."""
        if self.armed:
            self.armed = False
            self._watcher.forget(self)

    def expire(self) -> None:
        """The deadline passed: cancel the attempt's task."""
        self.armed = False
        if self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()

    def caught(self) -> bool:
        """Whether the cancellation being handled is this deadline's alone (then it is consumed)."""
        if not self._expired or self._task is None:
            return False
        uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
        return uncancel is None or uncancel() <= self._cancelling


class Deadlines:
    """The deadlines of one session's attempts, watched with one alarm at a time.

    An alarm per attempt (a timer the event loop keeps in its heap, armed and cancelled for
    every request) measured about 2% of a writeback batch's CPU. Here the attempts wait in
    a heap of ``(deadline, order, guard)`` (compared in C), and one alarm rings for the
    earliest; each call's deadline is its start plus the policy's, so a new attempt's
    deadline is rarely the earliest and rarely moves the alarm. A disarmed attempt leaves
    the heap when it comes to the top, or when the disarmed outnumber the armed. The alarm
    is left set when the heap empties: ringing for nothing costs less than a new alarm for
    each call made one after another.

    Expiring is what a per-attempt alarm would do: an attempt is ended once the clock
    rings past its deadline (a fake clock's ``call_at`` rings strictly past it).
    """

    __slots__ = ("_alarm", "_alarm_at", "_armed", "_clock", "_heap", "_order")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._armed = 0
        self._alarm: Alarm | None = None
        self._alarm_at = math.inf

    def watch(self, deadline: float, task: asyncio.Task[object] | None) -> Deadline:
        """Watch an attempt of ``task`` that must end by ``deadline``; disarm the guard when it ends."""
        guard = Deadline(self, task)
        heapq.heappush(self._heap, (deadline, next(self._order), guard))
        self._armed += 1
        if deadline < self._alarm_at:
            self._set_alarm(deadline)  # may ring (and expire the guard) at once, on a fake clock
        return guard

    def close(self) -> None:
        """The session closes: the alarm left set for nothing is cancelled (with a clock that
        has no ``call_at``, it is a task sleeping until a deadline that would outlive the session)."""
        if self._armed == 0:
            self._cancel_alarm()

    def forget(self, guard: Deadline) -> None:
        """``guard`` was disarmed: drop it, and the disarmed above it, from the heap's top."""
        self._armed -= 1
        heap = self._heap
        if heap[0][2] is guard or len(heap) > 2 * self._armed + 64:
            self._drop_disarmed()

    def _drop_disarmed(self) -> None:
        heap = self._heap
        if len(heap) > 2 * self._armed + 64:  # stuck under an attempt that is still running: compact
            heap[:] = [entry for entry in heap if entry[2].armed]
            heapq.heapify(heap)
        while heap and not heap[0][2].armed:
            heapq.heappop(heap)

    def _set_alarm(self, when: float) -> None:
        self._cancel_alarm()
        self._alarm_at = when
        alarm = set_alarm(self._clock, when, lambda: self._ring(when))
        if self._alarm_at == when:  # it did not ring at once (a fake clock already past ``when`` rings in call_at)
            self._alarm = alarm

    def _cancel_alarm(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm, self._alarm_at = None, math.inf

    def _ring(self, when: float) -> None:
        """The alarm set for ``when`` rang: end every attempt it, or the clock, has passed."""
        if when != self._alarm_at:
            return  # an alarm replaced by an earlier one, ringing before it was cancelled
        self._alarm, self._alarm_at = None, math.inf
        now = self._clock.monotonic()
        heap = self._heap
        while heap and (heap[0][0] <= when or heap[0][0] < now):
            _, _, guard = heapq.heappop(heap)
            if guard.armed:
                self._armed -= 1
                guard.expire()
        self._drop_disarmed()
        if heap:
            self._set_alarm(heap[0][0])
