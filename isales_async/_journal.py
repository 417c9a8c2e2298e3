"""The SQLite journal of a batch writeback: what each record's fate was, across runs.

Every record gets a row, keyed by its canonical dataId, as soon as a worker takes it
(``queued``), is marked ``sending`` (with the payload's fingerprint) just before its
request goes on the wire, and gets its outcome when it completes. Each change is its own
committed transaction in WAL mode, so the file survives ``kill -9`` of the process (not
a power cut: ``synchronous=NORMAL`` skips the fsync that costs). A re-run decides from
a row's state and fingerprint what to do (:mod:`._rerun`).

One run at a time: :meth:`Journal.begin_run` takes an exclusive operating-system lock on
``<journal>.lock`` (``flock``; ``msvcrt.locking`` on Windows), which the OS drops when
the holder exits or dies, so no stale lock outlives a crash. Reading
(``Journal(path, readonly=True)``) needs no lock and never writes the journal.

Every SQLite or OS failure is raised as :class:`~isales_async.JournalError` naming the
file. Journals written before fingerprints existed (schema 0) are migrated in place when
opened for writing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from ._errors import JournalError, JournalLockedError, ValidationError
from ._rerun import Status
from ._validation import check_data_id
from ._writeback import Writeback, fingerprint, writeback_body

__all__ = ["SCHEMA_VERSION", "Journal", "JournalEntry", "Status"]

#: ``PRAGMA user_version`` of the journals this version writes (0: before fingerprints).
SCHEMA_VERSION = 1

_RECORDS = """
CREATE TABLE {name} (
    data_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    run INTEGER NOT NULL,
    claimed INTEGER NOT NULL,
    record BLOB,
    fingerprint TEXT,
    error_type TEXT,
    code TEXT,
    message TEXT,
    updated REAL NOT NULL
)"""
_RUNS = "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, started REAL NOT NULL)"
_INDEX = "CREATE INDEX IF NOT EXISTS records_by_run ON records (run, status)"
# When migration folds rows that are one dataId ("1", "01") into one, the row that
# keeps the most caution wins: in doubt, then succeeded, failed, not sent, queued.
_RANK = "CASE {0} WHEN 'sending' THEN 5 WHEN 'unknown' THEN 5 WHEN 'succeeded' THEN 4 WHEN 'failed' THEN 3 WHEN 'not_sent' THEN 2 ELSE 1 END"
_COLUMNS = "data_id, status, run, record, fingerprint, error_type, code, message, updated"
_MIGRATED_COLUMNS = "data_id, status, run, claimed, record, fingerprint, error_type, code, message, updated"


@attrs.frozen
class JournalEntry:
    """One row of the journal: ``key`` is the canonical dataId, ``record`` the record as given."""

    key: str
    status: Status
    run: int
    record: dict[str, Any]
    fingerprint: str | None
    error_type: str | None
    code: str | None
    message: str | None
    updated: float

    def to_json(self) -> dict[str, Any]:
        """The entry for people and scripts (JSON Lines of ``isales journal export``)."""
        return {
            "status": self.status.value,
            "dataId": self.record.get("dataId", self.key),
            **{k: v for k, v in self.record.items() if k != "dataId"},
            "error": self.error_type,
            "code": self.code,
            "message": self.message,
            "run": self.run,
            "updated": _dt.datetime.fromtimestamp(self.updated, _dt.timezone.utc).isoformat(timespec="seconds"),
        }


class Journal:
    """An SQLite file recording every record's fate; reopen the same path to resume.

    Each batch given this journal is one *run* (:meth:`begin_run` ... :meth:`end_run`,
    which :func:`~isales_async.write_back_many` calls), so one object can serve several
    batches one after another; a second run at the same time, from this or any other
    process, raises :class:`~isales_async.JournalLockedError`.

    Args:
        path: the SQLite file (created if missing).
        readonly: open for reading only: no lock, no migration, no write of any kind
            (SQLite may create its ``-wal``/``-shm`` side files). Works while a run
            holds the journal, and on journals of every schema version.
    """

    def __init__(self, path: str | PathLike[str], *, readonly: bool = False) -> None:
        self.path: str = str(path)
        self.readonly: bool = readonly
        self.run: int | None = None  # the current (or last) run of this object
        self._lock: _RunLock | None = None
        self._db = self._connect()
        try:
            if not readonly:
                with self._guard("cannot be opened"):
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=NORMAL")
                    self._migrate()
            # A schema-0 journal read without migrating has no fingerprint column.
            self._fingerprints = self._has_fingerprints()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        with self._guard("cannot be opened"):
            if self.readonly:
                if not os.path.isfile(self.path):
                    raise JournalError(self.path, "does not exist")
                uri = Path(self.path).absolute().as_uri() + "?mode=ro"
                db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # a file of garbage fails here
            except BaseException:
                db.close()
                raise
            return db

    def _execute(self, doing: str, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        """One statement, its failure raised as :class:`JournalError` (the per-record path: no context manager)."""
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(self.path, f"{doing}: {_describe(exc)}") from exc

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Raise SQLite and OS failures as :class:`JournalError` naming this file and the cause."""
        try:
            yield
        except sqlite3.Error as exc:
            raise JournalError(self.path, f"{doing}: {_describe(exc)}") from exc
        except OSError as exc:
            raise JournalError(self.path, f"{doing}: {exc.strerror or exc}") from exc

    # -- schema ------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._execute("cannot be read", "PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self.schema_version()
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version > SCHEMA_VERSION:
                raise JournalError(
                    self.path,
                    f"was written by a newer isales-async (schema {version}; this one knows {SCHEMA_VERSION})",
                )
            if version < SCHEMA_VERSION:
                if "records" in tables:
                    self._migrate_from_0()
                elif tables - {"runs"}:
                    raise JournalError(
                        self.path, f"is an SQLite file but not a journal (tables: {', '.join(sorted(tables))})"
                    )
                else:
                    self._db.execute(_RECORDS.format(name="records"))
                self._db.execute(_RUNS)
                self._db.execute(_INDEX)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _migrate_from_0(self) -> None:
        """Rebuild a schema-0 table: canonical keys, and each row's fingerprint from its stored record."""
        self._db.execute(_RECORDS.format(name="records_v1"))
        rows = self._db.execute("SELECT data_id, status, run, record, error_type, code, message, updated FROM records")
        insert = (
            f"INSERT INTO records_v1 ({_MIGRATED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (data_id) DO UPDATE SET status = excluded.status, run = excluded.run, "
            f"claimed = MAX(excluded.claimed, records_v1.claimed), "
            f"record = excluded.record, fingerprint = excluded.fingerprint, error_type = excluded.error_type, "
            f"code = excluded.code, message = excluded.message, updated = excluded.updated "
            f"WHERE {_RANK.format('excluded.status')} > {_RANK.format('records_v1.status')}"
        )
        self._db.executemany(insert, (_migrated(*row) for row in rows.fetchall()))
        self._db.execute("DROP TABLE records")
        self._db.execute("ALTER TABLE records_v1 RENAME TO records")

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """End a run still in progress, and close the file."""
        self.end_run()
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether this object is in a run (holds the lock)."""
        return self._lock is not None

    def begin_run(self) -> int:
        """Take the journal's lock and start a new run; its number is also ``self.run``."""
        if self.readonly:
            raise JournalError(self.path, "was opened read-only; a run needs Journal(path)")
        if self._lock is not None:
            raise JournalLockedError(self.path, f"run {self.run} of this same Journal object, still in progress")
        self._lock = _RunLock(self.path)
        try:
            with self._guard("cannot start a run"):
                row = self._db.execute("INSERT INTO runs (started) VALUES (?) RETURNING id", (time.time(),)).fetchone()
        except BaseException:
            self.end_run()
            raise
        self.run = int(row[0])
        return self.run

    def end_run(self) -> None:
        """Release the lock (the run's rows stay); a no-op outside a run."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _current_run(self) -> int:
        if self._lock is None or self.run is None:
            raise JournalError(self.path, "is not in a run: call begin_run() first")
        return self.run

    # -- one record -----------------------------------------------------------------------

    def lookup(self, key: str) -> tuple[Status, int, str | None] | None:
        """The status, the last run that claimed it, and the fingerprint of ``key``'s row, if it has one."""
        row = self._execute(
            "cannot be read", "SELECT status, claimed, fingerprint FROM records WHERE data_id = ?", (key,)
        ).fetchone()
        return (Status(row[0]), int(row[1]), row[2]) if row else None

    def mark(
        self, key: str, status: Status, record: dict[str, object] | None = None, fingerprint: str | None = None
    ) -> None:
        """Set ``key``'s status in this run, clearing an earlier error; a given ``record`` and
        ``fingerprint`` replace the stored ones."""
        run = self._current_run()
        self._execute(
            "cannot be written",
            "INSERT INTO records (data_id, status, run, claimed, record, fingerprint, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (data_id) DO UPDATE SET status = excluded.status, run = excluded.run, claimed = excluded.claimed, "
            "record = COALESCE(excluded.record, records.record), "
            "fingerprint = COALESCE(excluded.fingerprint, records.fingerprint), updated = excluded.updated, "
            "error_type = NULL, code = NULL, message = NULL",
            (
                key,
                status.value,
                run,
                run,
                orjson.dumps(record) if record is not None else None,
                fingerprint,
                time.time(),
            ),
        )

    def touch(self, key: str) -> None:
        """Claim ``key`` for this run and change nothing else: a later record with it is a duplicate,
        while its state (and the run that set it) stay as they were."""
        run = self._current_run()
        self._execute("cannot be written", "UPDATE records SET claimed = ? WHERE data_id = ?", (run, key))

    def finish(self, key: str, status: Status, error: BaseException | None = None) -> None:
        """Record the outcome of ``key`` in this run."""
        run = self._current_run()
        self._execute(
            "cannot be written",
            "UPDATE records SET status = ?, run = ?, claimed = ?, error_type = ?, code = ?, message = ?, "
            "updated = ? WHERE data_id = ?",
            (
                status.value,
                run,
                run,
                type(error).__name__ if error is not None else None,
                getattr(error, "code", None),
                str(error) if error is not None else None,
                time.time(),
                key,
            ),
        )

    # -- reading ---------------------------------------------------------------------------

    def entries(
        self, *statuses: Status, run: int | None = None, offset: int = 0, limit: int = -1
    ) -> Iterator[JournalEntry]:
        """The rows in ``statuses`` (all when none is given; of ``run``, if given), oldest first;
        ``offset``/``limit`` select a slice without reading the rest."""
        where: list[str] = []
        params: list[object] = []
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += [s.value for s in statuses]
        if run is not None:
            where.append("run = ?")
            params.append(run)
        columns = _COLUMNS if self._fingerprints else _COLUMNS.replace("fingerprint", "NULL")
        sql = f"SELECT {columns} FROM records{' WHERE ' + ' AND '.join(where) if where else ''}"
        with self._guard("cannot be read"):
            cursor = self._db.execute(sql + " ORDER BY updated, data_id LIMIT ? OFFSET ?", [*params, limit, offset])
            for key, status, row_run, record, fp, error_type, code, message, updated in cursor:
                yield JournalEntry(
                    key,
                    Status(status),
                    row_run,
                    orjson.loads(record) if record else {},
                    fp,
                    error_type,
                    code,
                    message,
                    updated,
                )

    def _has_fingerprints(self) -> bool:
        with self._guard("cannot be read"):
            return any(row[1] == "fingerprint" for row in self._db.execute("PRAGMA table_info(records)"))

    def count(self, status: Status, run: int | None = None) -> int:
        sql = "SELECT COUNT(*) FROM records WHERE status = ?" + (" AND run = ?" if run is not None else "")
        params = (status.value,) if run is None else (status.value, run)
        return int(self._execute("cannot be read", sql, params).fetchone()[0])

    def counts(self) -> dict[Status, int]:
        """How many records are in each state (every state present, 0 included)."""
        with self._guard("cannot be read"):
            found = dict(self._db.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall())
        return {status: int(found.get(status.value, 0)) for status in Status}

    def runs(self) -> tuple[int, float | None]:
        """How many runs the journal has seen, and when the last one started (Unix time)."""
        with self._guard("cannot be read"):
            count, last = self._db.execute("SELECT COUNT(*), MAX(started) FROM runs").fetchone()
        return int(count), last


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "")  # Python 3.11+
    return f"{exc} ({name})" if name else str(exc)


def _legacy_key(data_id: str) -> str:
    """The canonical key of a schema-0 row: the number the server read, whatever digits it came in."""
    try:
        return check_data_id(data_id)
    except ValidationError:
        with contextlib.suppress(ValueError):
            if data_id.isdigit() and int(data_id) > 0:
                return str(int(data_id))  # fullwidth and other Unicode digits: the server read this number
        return data_id


def _legacy_fingerprint(key: str, record: bytes | None) -> str | None:
    if not record:
        return None
    try:
        writeback = Writeback.from_json(orjson.loads(record))
        body = writeback_body(
            writeback.busi_result, writeback.sub_status, writeback.busi_result_desc, writeback.work_no
        )
    except (ValueError, TypeError):  # ValidationError and JSON errors are ValueErrors
        return None
    return fingerprint(key, body)


def _migrated(
    data_id: str,
    status: str,
    run: int,
    record: bytes | None,
    error_type: str | None,
    code: str | None,
    message: str | None,
    updated: float,
) -> tuple[Any, ...]:
    key = _legacy_key(data_id)
    return (key, status, run, run, record, _legacy_fingerprint(key, record), error_type, code, message, updated)


# -- the run lock -------------------------------------------------------------------------------

if sys.platform == "win32":
    import msvcrt

    # Lock one byte far past the holder text, so other processes can still read who holds it.
    _LOCK_OFFSET = 1 << 30

    def _try_lock(handle: IO[bytes]) -> bool:
        handle.seek(_LOCK_OFFSET)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except PermissionError:
            return False
        except OSError as exc:
            if exc.errno in (13, 36):  # EACCES, EDEADLOCK: another process holds it
                return False
            raise
        finally:
            handle.seek(0)
        return True

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(_LOCK_OFFSET)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        handle.seek(0)

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class _RunLock:
    """An exclusive lock on ``<journal>.lock``, whose text says who holds it.

    The file is never deleted: removing a lock file lets two processes each lock a
    different file of the same name.
    """

    def __init__(self, journal_path: str) -> None:
        self.path = journal_path + ".lock"
        try:
            self._handle = open(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), "r+b")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise JournalError(journal_path, f"cannot open its lock file {self.path}: {exc.strerror}") from exc
        try:
            if not _try_lock(self._handle):
                holder = self._handle.read(1000).decode(errors="replace").strip()
                raise JournalLockedError(journal_path, _describe_holder(holder))
            self._handle.truncate(0)
            self._handle.write(
                orjson.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    }
                )
            )
            self._handle.flush()
        except OSError as exc:
            self._handle.close()
            raise JournalError(journal_path, f"cannot lock {self.path}: {exc.strerror}") from exc
        except BaseException:
            self._handle.close()
            raise

    def release(self) -> None:
        try:
            self._handle.seek(0)
            self._handle.truncate(0)  # before unlocking: the next holder writes its own text
            _unlock(self._handle)
        finally:
            self._handle.close()


def _describe_holder(text: str) -> str:
    try:
        holder = orjson.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, since {holder['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"
