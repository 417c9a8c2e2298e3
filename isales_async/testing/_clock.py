"""A fake clock for tests: no real waiting, and every requested sleep recorded."""

from __future__ import annotations

import asyncio
import datetime as _dt

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`isales_async.Clock` whose time moves only when code sleeps or a test advances it.

    With ``autojump=True`` (the default) a sleep returns at once and moves the clock to
    the sleeper's deadline, so backoff and ``Retry-After`` cost no real time. With
    ``autojump=False`` sleepers wait until the test calls :meth:`advance`; together
    with :meth:`wait_for_sleepers` this lets a test observe who waits, and for how long.
    ``sleeps`` records every requested delay in order.
    """

    def __init__(self, *, autojump: bool = True, wall_start: _dt.datetime | None = None) -> None:
        self.autojump = autojump
        self.sleeps: list[float] = []
        self._now = 0.0
        self._wall_start = wall_start or _dt.datetime.now(_dt.timezone.utc)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
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
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, waiter))
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

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        self._now += seconds
        for deadline, waiter in self._sleepers:
            if deadline <= self._now + 1e-9 and not waiter.done():
                waiter.set_result(None)
