"""The client-wide limit's own primitive, :class:`~isales_async._limits.Slots`: first come,
first served, and no slot lost to a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio.lowlevel
import pytest

from isales_async._limits import Slots


async def until(condition: Callable[[], bool], turns: int = 100) -> None:
    """Let the other tasks run until ``condition`` holds, for at most ``turns`` loop turns."""
    for _ in range(turns):
        if condition():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("the condition never held")


def test_a_free_slot_is_taken_at_once_and_none_beyond_the_total() -> None:
    slots = Slots(2)
    assert slots.take() and slots.take()
    assert slots.locked() and not slots.take()
    slots.release()
    assert not slots.locked() and slots.take()


async def test_waiters_are_served_first_come_first_served() -> None:
    slots = Slots(1)
    assert slots.take()
    served: list[int] = []

    async def wait(n: int) -> None:
        await slots.acquire()
        served.append(n)

    tasks = []
    for n in range(3):
        tasks.append(asyncio.ensure_future(wait(n)))
        await anyio.lowlevel.checkpoint()  # each one in line before the next
    assert not slots.take()  # nobody overtakes the line, even with a slot about to be freed
    for n in range(3):
        slots.release()
        await until(lambda n=n: len(served) == n + 1)  # type: ignore[misc]
    assert served == [0, 1, 2]
    await asyncio.gather(*tasks)
    assert slots.locked()  # the last waiter holds the one slot
    slots.release()
    assert slots.take()


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_goes_to_the_next() -> None:
    slots = Slots(1)
    assert slots.take()
    first = asyncio.ensure_future(slots.acquire())
    await anyio.lowlevel.checkpoint()
    second = asyncio.ensure_future(slots.acquire())
    await anyio.lowlevel.checkpoint()
    slots.release()  # handed to the first...
    first.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # the slot passed on, not lost
    assert not slots.take()
    slots.release()
    assert slots.take()


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    slots = Slots(1)
    assert slots.take()
    waiter = asyncio.ensure_future(slots.acquire())
    await anyio.lowlevel.checkpoint()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    assert slots.take()  # nobody left in line: the freed slot is free
