"""A :class:`~isales_async.receivers.DedupeStore` in a SQLite file, shared by the processes of one host."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from .._clock import Clock, SystemClock
from .._errors import ValidationError
from .._validation import check_clock
from ._dedupe import Claim, check_seconds

__all__ = ["SqliteDedupeStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_claims (
    call_id TEXT PRIMARY KEY,
    token TEXT,  -- the claimer's token; NULL once processed
    expires REAL NOT NULL  -- Unix time
);
CREATE INDEX IF NOT EXISTS push_claims_expires ON push_claims (expires);
"""
_INSERT_CLAIM = "INSERT INTO push_claims (call_id, token, expires) VALUES (?, ?, ?) ON CONFLICT (call_id) DO NOTHING"
_DELETE_CLAIM = "DELETE FROM push_claims WHERE call_id = ? AND token = ?"
_MARK_PROCESSED = """
INSERT INTO push_claims (call_id, token, expires) VALUES (:call_id, NULL, :expires)
ON CONFLICT (call_id) DO UPDATE SET token = NULL, expires = :expires
WHERE push_claims.token = :token OR push_claims.expires <= :now
"""


class SqliteDedupeStore:
    """Claims in a SQLite file, for several processes on one host (gunicorn or uvicorn
    workers): every process names the same ``path``.

    A claim is an ``INSERT`` that fails when the call ID has a live entry, inside an
    ``IMMEDIATE`` transaction, so two processes never both take one. The file is in WAL
    mode and a locked database is waited for up to ``busy_timeout`` seconds; past it the
    call raises and the receiver answers 503. sqlite3 blocks, so each store runs it on a
    thread of its own, never on the event loop. Expiries are wall-clock (Unix) times on
    ``clock``, shared by every process of the host. A network file system is no place
    for the file (SQLite's locks do not hold there): across hosts use
    :class:`~isales_async.receivers.RedisDedupeStore`.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0, clock: Clock | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ValidationError("path", f"must be the path of a SQLite file, got {path!r}")
        self.path = os.fspath(path)
        self._busy_timeout = check_seconds("busy_timeout", busy_timeout)
        check_clock("clock", clock)
        self._clock = clock or SystemClock()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="isales-dedupe-sqlite")
        self._db: sqlite3.Connection | None = None  # opened, and only used, on that thread

    def __repr__(self) -> str:
        return f"SqliteDedupeStore({self.path!r})"

    async def claim(self, call_ids: Sequence[str], token: str, ttl: float) -> list[Claim]:
        now = self._now()
        return await self._run(
            lambda db: _in_transaction(db, lambda: _claim(db, list(call_ids), token, now, now + ttl))
        )

    async def processed(self, call_ids: Sequence[str], token: str, window: float) -> None:
        now = self._now()
        rows = [{"call_id": c, "token": token, "expires": now + window, "now": now} for c in call_ids]
        await self._run(lambda db: _in_transaction(db, lambda: db.executemany(_MARK_PROCESSED, rows)))

    async def release(self, call_ids: Sequence[str], token: str) -> None:
        rows = [(c, token) for c in call_ids]
        await self._run(lambda db: _in_transaction(db, lambda: db.executemany(_DELETE_CLAIM, rows)))

    async def aclose(self) -> None:
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._thread.shutdown(wait=False)

    def _now(self) -> float:
        return self._clock.wall().timestamp()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the store's thread: ``work`` on the connection, opened on first use (and
        again after a failure, which may have been the file's)."""
        if self._db is None:
            self._db = _connect(self.path, self._busy_timeout)
        try:
            return work(self._db)
        except sqlite3.Error:
            self._db.close()
            self._db = None
            raise


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # Durable through a crash of the process; a power cut may lose the last marks, so
        # re-pushes of those call IDs would be processed again.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
    except sqlite3.Error:
        db.close()
        raise
    return db


def _in_transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    """``work`` in one ``IMMEDIATE`` transaction (one commit for a whole push), rolled back if it fails."""
    db.execute("BEGIN IMMEDIATE")  # the write lock now: no other process writes between our reads and writes
    try:
        done = work()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return done


def _claim(db: sqlite3.Connection, call_ids: list[str], token: str, now: float, expires: float) -> list[Claim]:
    """Take the absent or expired call IDs for ``token``; say what was found for each."""
    db.execute("DELETE FROM push_claims WHERE expires <= ?", (now,))
    found = []
    for call_id in call_ids:
        if db.execute(_INSERT_CLAIM, (call_id, token, expires)).rowcount == 1:
            found.append(Claim.TAKEN)
            continue
        (holder,) = db.execute("SELECT token FROM push_claims WHERE call_id = ?", (call_id,)).fetchone()
        if holder == token:  # our own claim, renewed (or resent after its answer was lost)
            db.execute("UPDATE push_claims SET expires = ? WHERE call_id = ?", (expires, call_id))
        found.append(Claim.PROCESSED if holder is None else Claim.TAKEN if holder == token else Claim.HELD)
    return found
