"""Time, behind a small protocol so tests can replace it with a fake clock."""

from __future__ import annotations

import datetime as _dt
import time
from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What the session needs of time: a monotonic reading, the wall time, and sleeping."""

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
