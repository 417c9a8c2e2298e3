"""The journal module as isales-async 0.1.0 shipped it (schema 0: keyed by dataId as given, no
fingerprints), kept verbatim below this docstring so tests can write a journal exactly as
that version did and prove the current one migrates it. Not used by the package."""

# ruff: noqa
# fmt: off

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Iterator
from os import PathLike

import orjson

__all__ = ["Journal", "Status"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    data_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    run INTEGER NOT NULL,
    record BLOB,
    error_type TEXT,
    code TEXT,
    message TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_run ON records (run, status);
"""


class Status(enum.Enum):
    """A record's state in the journal."""

    QUEUED = "queued"  # taken by a worker, not yet sent
    SENDING = "sending"  # may have reached the server
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanently: validation or a business error
    NOT_SENT = "not_sent"  # failed without being applied (connect, 429, 503, 401): safe to resend
    UNKNOWN = "unknown"


class Journal:
    """An SQLite file recording every record's fate; reopen the same path to resume.

    Each :class:`Journal` instance is one *run*: rows it writes carry its run number.
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.run = int(
            self._db.execute("INSERT INTO runs (started) VALUES (?) RETURNING id", (time.time(),)).fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lookup(self, data_id: str) -> tuple[Status, int] | None:
        """The status and run of ``data_id``'s row, if it has one."""
        row = self._db.execute("SELECT status, run FROM records WHERE data_id = ?", (data_id,)).fetchone()
        return (Status(row[0]), int(row[1])) if row else None

    def mark(self, data_id: str, status: Status, record: dict[str, object] | None = None) -> None:
        """Set ``data_id``'s status for this run (keeping its stored record when none is given)."""
        self._db.execute(
            "INSERT INTO records (data_id, status, run, record, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (data_id) DO UPDATE SET status = excluded.status, run = excluded.run, "
            "record = COALESCE(excluded.record, records.record), updated = excluded.updated",
            (data_id, status.value, self.run, orjson.dumps(record) if record is not None else None, time.time()),
        )

    def finish(self, data_id: str, status: Status, error: BaseException | None = None) -> None:
        """Record the outcome of ``data_id`` in this run."""
        self._db.execute(
            "UPDATE records SET status = ?, run = ?, error_type = ?, code = ?, message = ?, updated = ? WHERE data_id = ?",
            (
                status.value,
                self.run,
                type(error).__name__ if error is not None else None,
                getattr(error, "code", None),
                str(error) if error is not None else None,
                time.time(),
                data_id,
            ),
        )

    def rows(
        self, *statuses: Status, run: int | None = None, offset: int = 0, limit: int = -1
    ) -> Iterator[tuple[str, dict[str, object], str | None, str | None]]:
        """``(data_id, record, error_type, message)`` of the rows in ``statuses`` (of ``run``, if
        given), oldest first; ``offset``/``limit`` select a slice without reading the rest."""
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT data_id, record, error_type, message FROM records WHERE status IN ({marks})"
        params: list[object] = [s.value for s in statuses]
        if run is not None:
            sql += " AND run = ?"
            params.append(run)
        params += [limit, offset]
        for data_id, record, error_type, message in self._db.execute(
            sql + " ORDER BY updated, data_id LIMIT ? OFFSET ?", params
        ):
            yield data_id, orjson.loads(record) if record else {}, error_type, message

    def count(self, status: Status, run: int | None = None) -> int:
        if run is None:
            return int(self._db.execute("SELECT COUNT(*) FROM records WHERE status = ?", (status.value,)).fetchone()[0])
        sql = "SELECT COUNT(*) FROM records WHERE status = ? AND run = ?"
        return int(self._db.execute(sql, (status.value, run)).fetchone()[0])
