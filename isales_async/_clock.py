"""Time, behind a small protocol so tests can replace it with a fake clock."""

from __future__ import annotations

import asyncio
import datetime as _dt
import time
from collections.abc import Callable
from typing import Protocol

import anyio

__all__ = ["Alarm", "Clock", "SystemClock", "set_alarm"]


class Clock(Protocol):
    """What the session needs of time: a monotonic reading, the wall time, and sleeping.

    A clock may also offer ``call_at(when, callback)``, returning an object with
    ``cancel()``: it calls ``callback`` once ``monotonic()`` reaches ``when``, without
    moving time itself. A call's deadline is watched with it; without it, by a task
    sleeping on the clock until the deadline.
    """

    def monotonic(self) -> float: ...

    def wall(self) -> _dt.datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic``, UTC wall time and ``anyio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Call ``callback`` on the running loop once ``monotonic()`` reaches ``when``."""
        return asyncio.get_running_loop().call_later(max(0.0, when - self.monotonic()), callback)


class Alarm(Protocol):
    """A pending ``call_at``: ``cancel()`` disarms it."""

    def cancel(self) -> object: ...


def set_alarm(clock: Clock, when: float, callback: Callable[[], object]) -> Alarm:
    """Call ``callback`` once ``clock`` reaches ``when``: through the clock's own
    ``call_at`` if it has one, else from a task that sleeps on it."""
    call_at = getattr(clock, "call_at", None)
    if callable(call_at):
        alarm: Alarm = call_at(when, callback)
        return alarm

    async def ring() -> None:
        await clock.sleep(when - clock.monotonic())
        callback()

    return asyncio.ensure_future(ring())
