"""The journal's thread during a run: it owns the connection, and applies what a batch queues in groups.

The event loop never waits on SQLite. A batch queues writes (:meth:`JournalWriter.write`,
:meth:`JournalWriter.durable`) and reads (:meth:`JournalWriter.lookup`) without blocking;
the thread takes everything queued so far, applies the writes in order as one statement
(one transaction, :meth:`~isales_async.batch._journal.Journal.apply`), and only then
answers their waiters, in one call back into the loop. So a write the batch awaits (a
record's intent to send) is committed when the await returns, and everything queued
before it is too; a read sees every write queued before it.

Writes that fail are rolled back together: their waiters get the
:class:`~isales_async.JournalError`, and ``on_failure`` gets it with the tags of those
writes (a batch tags the successes it records, so it can report those the journal lost).
The thread goes on: what is queued after a failure is still tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Callable, Sequence
from threading import Thread
from typing import Any, Generic, TypeVar

from .._errors import JournalError
from ._journal import Journal, JournalRow, Write

__all__ = ["JournalWriter"]

T = TypeVar("T")


class _Lookup:
    """A read queued among the writes: the rows of ``keys``."""

    __slots__ = ("keys",)

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys


_CLOSE = _Lookup(())
#: What the loop queues: a write or a read, who waits for it (if anyone), and its tag.
_Item = tuple[Write | _Lookup, "asyncio.Future[Any] | None", Any]
#: What the thread answers: each waiter with its result, or the error.
_Answer = tuple["asyncio.Future[Any]", Any, JournalError | None]


class JournalWriter(Generic[T]):
    """Applies a run's journal writes in groups from one thread of its own.

    Create it in the event loop the batch runs in; :meth:`close` ends the thread once
    everything queued is applied. The journal's connection is used by this thread alone
    until then.
    """

    def __init__(self, journal: Journal, on_failure: Callable[[JournalError, list[T]], None]) -> None:
        self._journal = journal
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[list[_Item]] = queue.SimpleQueue()
        self._pending: list[_Item] = []  # queued in this turn of the loop, handed over at its end
        self._thread = Thread(target=self._serve, name=f"isales-journal {journal.path}", daemon=True)
        self._thread.start()

    # -- the event loop's side ------------------------------------------------------------------

    def write(self, write: Write, tag: T | None = None) -> None:
        """Queue ``write``; ``tag`` goes to ``on_failure`` if it fails."""
        self._queue_item((write, None, tag))

    def durable(self, write: Write) -> asyncio.Future[None]:
        """Queue ``write``: the future is done once it is committed (or it failed)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue_item((write, future, None))
        return future

    def lookup(self, keys: Sequence[str]) -> asyncio.Future[dict[str, JournalRow]]:
        """The rows of ``keys`` as every write queued before this call leaves them."""
        future: asyncio.Future[dict[str, JournalRow]] = self._loop.create_future()
        self._queue_item((_Lookup(keys), future, None))
        return future

    def _queue_item(self, item: _Item) -> None:
        # Waking the thread costs both threads a switch: it is woken once a turn of the loop at most.
        if not self._pending:
            self._loop.call_soon(self._hand_over)
        self._pending.append(item)

    def _hand_over(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._queue.put(pending)

    async def flush(self) -> None:
        """Wait until everything queued so far is applied (a failure went to ``on_failure``)."""
        await self.lookup(())

    def close(self) -> None:
        """Apply what is queued, then end the thread (blocking: call it once the batch is done)."""
        self._hand_over()
        self._queue.put([(_CLOSE, None, None)])
        self._thread.join()

    def _answer(self, answers: list[_Answer], failure: tuple[JournalError, list[T]] | None) -> None:
        if failure is not None:
            self._on_failure(*failure)
        for future, result, error in answers:
            if future.done():  # its waiter was cancelled
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    # -- the thread ---------------------------------------------------------------------------------

    def _serve(self) -> None:
        closing = False
        while not closing:
            group = self._queue.get()
            with contextlib.suppress(queue.Empty):
                while True:
                    group += self._queue.get_nowait()
            closing = any(item[0] is _CLOSE for item in group)
            answers, failure = self._apply(group)
            if answers or failure is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    self._loop.call_soon_threadsafe(self._answer, answers, failure)

    def _apply(self, group: list[_Item]) -> tuple[list[_Answer], tuple[JournalError, list[T]] | None]:
        """Apply the group's writes in order, each run of writes between two reads at once."""
        answers: list[_Answer] = []
        first_error: JournalError | None = None
        lost: list[T] = []
        writes: list[Write] = []
        waiters: list[asyncio.Future[Any]] = []
        tags: list[T] = []
        for item, waiter, tag in (*group, (_CLOSE, None, None)):
            if not isinstance(item, _Lookup):
                writes.append(item)
                if waiter is not None:
                    waiters.append(waiter)
                if tag is not None:
                    tags.append(tag)
                continue
            if writes:
                error = self._guarded(self._journal.apply, writes)
                answers += [(waiter, None, error) for waiter in waiters]
                if error is not None:
                    first_error = first_error or error
                    lost += tags
                writes, waiters, tags = [], [], []
            if waiter is not None:
                rows = self._guarded(self._journal.lookup_many, item.keys)
                if isinstance(rows, JournalError):
                    first_error = first_error or rows
                    answers.append((waiter, None, rows))
                else:
                    answers.append((waiter, rows, None))
        return answers, (first_error, lost) if first_error is not None else None

    def _guarded(self, action: Callable[[Sequence[Any]], Any], argument: Sequence[Any]) -> Any:
        """``action(argument)``, or the :class:`JournalError` it raised: the thread must not die."""
        try:
            return action(argument)
        except JournalError as exc:
            return exc
        except Exception as exc:  # a bug: every waiter would wait forever if the thread died of it
            error = JournalError(self._journal.path, f"cannot be written: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return error
