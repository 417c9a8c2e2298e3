"""A fake clock for tests: no real waiting, and every requested sleep recorded."""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections.abc import Callable

__all__ = ["FakeClock"]


class _Alarm:
    """A callback due at a time of a :class:`FakeClock`, until it fires or is cancelled."""

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when: float = when
        self.cancelled: bool = False
        self._callback = callback

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._callback()


class FakeClock:
    """A :class:`isales_async.Clock` whose time moves only when code sleeps or a test advances it.

    With ``autojump=True`` (the default) a sleep returns at once and moves the clock to
    the sleeper's deadline, so backoff and ``Retry-After`` cost no real time. With
    ``autojump=False`` sleepers wait until the test calls :meth:`advance`; together
    with :meth:`wait_for_sleepers` this lets a test observe who waits, and for how long.
    ``sleeps`` records every requested delay in order.

    With ``virtual=True`` time is virtual, as in trio's autojump clock: sleepers wait, and
    whenever no task of the event loop can run, time jumps to the earliest sleeper's
    deadline. Tasks sleeping at once overlap in time as they would on a real clock (ten
    concurrent 50 ms requests take 50 ms, not 500), at no real cost. It is meant for code
    that waits on nothing but this clock and the memory transport: a socket's I/O is
    invisible to it. It needs an event loop that keeps its ready queue where the
    standard library's does (asyncio's own loops).
    """

    def __init__(self, *, autojump: bool = True, virtual: bool = False, wall_start: _dt.datetime | None = None) -> None:
        self.autojump = autojump and not virtual
        self.virtual = virtual
        self._watching = False
        self.sleeps: list[float] = []
        self._now = 0.0
        self._wall_start = wall_start or _dt.datetime.now(_dt.timezone.utc)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._alarms: list[_Alarm] = []
        self._changed = asyncio.Condition()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> _dt.datetime:
        return self._wall_start + _dt.timedelta(seconds=self._now)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        deadline = self._now + seconds
        if self.autojump:
            self._now = max(self._now, deadline)
            self._ring()
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, waiter))
        if self.virtual and not self._watching:
            self._watching = True
            asyncio.get_running_loop().call_soon(self._jump_when_idle)
        async with self._changed:
            self._changed.notify_all()
        try:
            await waiter
        finally:
            self._sleepers = [(d, w) for d, w in self._sleepers if w is not waiter]

    @property
    def sleeper_deadlines(self) -> list[float]:
        """When each current sleeper wakes, in the clock's time."""
        return sorted(deadline for deadline, _ in self._sleepers)

    async def wait_for_sleepers(self, count: int) -> None:
        """Return once at least ``count`` tasks are asleep on this clock."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._sleepers) >= count)

    def call_at(self, when: float, callback: Callable[[], object]) -> _Alarm:
        """Call ``callback`` once the clock has passed ``when`` (at once if it has);
        ``cancel()`` the returned alarm to disarm it.

        Unlike :meth:`sleep` it never moves time, with ``autojump`` either: a call's
        deadline is watched this way, and ends an attempt only when time gets there.
        """
        alarm = _Alarm(when, callback)
        self._alarms.append(alarm)
        self._ring()
        return alarm

    def _ring(self) -> None:
        # Strictly past: a wait the deadline allows may end exactly on it (autojump).
        due = [alarm for alarm in self._alarms if alarm.when < self._now]
        self._alarms = [alarm for alarm in self._alarms if alarm.when >= self._now and not alarm.cancelled]
        for alarm in due:
            alarm.fire()

    def _jump_when_idle(self) -> None:
        """Once per turn of the loop while anyone sleeps: when nothing else can run, move
        time to the earliest deadline."""
        loop = asyncio.get_running_loop()
        deadlines = [deadline for deadline, waiter in self._sleepers if not waiter.done()]
        if not deadlines:
            self._watching = False
            return
        ready = getattr(loop, "_ready", None)
        if ready is None:
            raise RuntimeError(f"FakeClock(virtual=True) needs an asyncio event loop, not {type(loop).__name__}")
        if not ready:  # every task waits: on this clock, or on something that never comes
            self.advance(max(0.0, min(deadlines) - self._now))
        loop.call_soon(self._jump_when_idle)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper (and alarm) whose deadline has come."""
        self._now += seconds
        self._ring()
        for deadline, waiter in self._sleepers:
            if deadline <= self._now + 1e-9 and not waiter.done():
                waiter.set_result(None)
