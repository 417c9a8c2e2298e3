"""The SQLite journal of a batch writeback: what each record's fate was, across runs.

Every record a batch takes gets a row, keyed by its canonical dataId: ``sending`` (with
the payload and its fingerprint) before its request goes on the wire, then its outcome
when it completes; a record taken and not sent is ``queued`` (or keeps the row an earlier
run left). During a run one thread owns the connection (:mod:`._writer`) and commits the
batch's statements in groups, in the order they were queued: a request leaves only once
the group holding its ``sending`` row is committed. In WAL mode a commit survives
``kill -9`` of the process (not a power cut: ``synchronous=NORMAL`` skips the fsync that
costs). A re-run decides from a row's state and fingerprint what to do (:mod:`._rerun`).

One run at a time: :meth:`Journal.begin_run` takes an exclusive operating-system lock on
the journal file itself (``flock``; ``msvcrt.locking`` on Windows), which the OS drops
when the holder exits or dies, so no stale lock outlives a crash; ``<journal>.lock`` only
says who holds it. Reading
(``Journal(path, readonly=True)``) needs no lock and never writes the journal.

Every SQLite or OS failure is raised as :class:`~isales_async.JournalError` naming the
file. Journals written before fingerprints existed (schema 0) are migrated in place when
opened for writing; :meth:`Journal.snapshot` migrates a copy in memory instead, so a dry
run reads an old journal as the run will, without changing it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import orjson

from .._errors import JournalError, JournalLockedError, ValidationError
from .._validation import check_data_id
from ._lock import JournalFile
from ._rerun import Status
from ._writeback import Writeback, fingerprint, writeback_body

__all__ = ["SCHEMA_VERSION", "Journal", "JournalEntry", "JournalRow", "Status", "Write"]

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
# A run's successes outlive a later run that takes their rows over (a changed record sent
# again): the row it had is kept here, so that run's report still lists it. Additive, so
# created (if missing) on every open for writing, without a schema version of its own.
_EARLIER_SUCCESSES = (
    "CREATE TABLE IF NOT EXISTS earlier_successes ("
    "run INTEGER NOT NULL, data_id TEXT NOT NULL, record BLOB, updated REAL NOT NULL, PRIMARY KEY (run, data_id))",
    "CREATE TRIGGER IF NOT EXISTS keep_earlier_successes BEFORE UPDATE OF status, run ON records "
    "WHEN OLD.status = 'succeeded' AND NEW.run IS NOT OLD.run BEGIN "
    "INSERT OR REPLACE INTO earlier_successes (run, data_id, record, updated) "
    "VALUES (OLD.run, OLD.data_id, OLD.record, OLD.updated); END",
)
_SUCCEEDED_IN = (
    "SELECT {0} FROM (SELECT data_id, record, updated FROM records WHERE status = 'succeeded' AND run = ? "
    "UNION ALL SELECT data_id, record, updated FROM earlier_successes WHERE run = ?)"
)
# When migration folds rows that are one dataId ("1", "01") into one, the row that
# keeps the most caution wins: in doubt, then succeeded, failed, not sent, queued.
_RANK = "CASE {0} WHEN 'sending' THEN 5 WHEN 'unknown' THEN 5 WHEN 'succeeded' THEN 4 WHEN 'failed' THEN 3 WHEN 'not_sent' THEN 2 ELSE 1 END"
_COLUMNS = "data_id, status, run, record, fingerprint, error_type, code, message, updated"
_ROW_COLUMNS = "status, claimed, fingerprint, run, record, error_type, code, message, updated"
_KEYS_PER_QUERY = 500  # well under SQLite's limit on the parameters of one statement
# Every write of a record is one row inserted into this view, whose trigger applies it: so a
# group of writes, in order, is one statement (one transaction, one call into SQLite) fed a
# JSON array of rows (:meth:`Journal.apply`). Temporary: the journal's schema is unchanged.
_OPS_VIEW = (
    "CREATE TEMP VIEW IF NOT EXISTS journal_writes "
    "(op, data_id, status, run, record, fingerprint, error_type, code, message, updated) "
    "AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0"
)
# One trigger a kind of write, each run only for its own (``WHEN``).
_OPS_TRIGGERS = (
    """CREATE TEMP TRIGGER IF NOT EXISTS journal_mark INSTEAD OF INSERT ON journal_writes WHEN NEW.op = 'mark' BEGIN
    INSERT INTO records (data_id, status, run, claimed, record, fingerprint, updated)
    SELECT NEW.data_id, NEW.status, NEW.run, NEW.run, CAST(NEW.record AS BLOB), NEW.fingerprint, NEW.updated WHERE true
    ON CONFLICT (data_id) DO UPDATE SET status = excluded.status, run = excluded.run, claimed = excluded.claimed,
    record = COALESCE(excluded.record, records.record),
    fingerprint = COALESCE(excluded.fingerprint, records.fingerprint), updated = excluded.updated,
    error_type = NULL, code = NULL, message = NULL; END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS journal_touch INSTEAD OF INSERT ON journal_writes WHEN NEW.op = 'touch' BEGIN
    UPDATE records SET claimed = NEW.run WHERE data_id = NEW.data_id; END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS journal_finish INSTEAD OF INSERT ON journal_writes WHEN NEW.op = 'finish' BEGIN
    UPDATE records SET status = NEW.status, run = NEW.run, claimed = NEW.run, error_type = NEW.error_type,
    code = NEW.code, message = NEW.message, updated = NEW.updated WHERE data_id = NEW.data_id; END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS journal_restore INSTEAD OF INSERT ON journal_writes WHEN NEW.op = 'restore'
    BEGIN
    UPDATE records SET status = NEW.status, run = NEW.run, record = CAST(NEW.record AS BLOB),
    fingerprint = NEW.fingerprint, error_type = NEW.error_type, code = NEW.code, message = NEW.message,
    updated = NEW.updated WHERE data_id = NEW.data_id;
    DELETE FROM earlier_successes WHERE NEW.status = 'succeeded' AND run = NEW.run AND data_id = NEW.data_id; END""",
)
_APPLY = (
    "INSERT INTO journal_writes SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, "
    "value->>6, value->>7, value->>8, value->>9 FROM json_each(?) ORDER BY key"
)

#: One write of a record, for :meth:`Journal.apply`: what to do ("mark", "touch", "finish",
#: "restore"), then the key and the columns it sets (the record as JSON text).
Write = tuple[str, str, str | None, int, str | None, str | None, str | None, str | None, str | None, float | None]


class JournalRow(NamedTuple):
    """A record's row as a batch reads it to decide (see :meth:`Journal.lookup_many`)."""

    status: Status
    claimed: int  # the last run whose input had it
    fingerprint: str | None
    run: int  # the run that set its state
    record: bytes | None
    error_type: str | None
    code: str | None
    message: str | None
    updated: float


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
        readonly: open for reading only: no lock, no migration, no write of any kind,
            and no side file left beside a journal no run has open. Works while a run
            holds the journal, and on journals of every schema version (see also
            :meth:`snapshot`, which reads a journal as a run would find it).
    """

    def __init__(self, path: str | PathLike[str], *, readonly: bool = False) -> None:
        self.path: str = str(path)
        self.readonly: bool = readonly
        self.run: int | None = None  # the current (or last) run of this object
        self._writes_ready = False  # the temporary view :meth:`apply` writes through exists
        self._db = self._connect()
        try:
            with self._guard("cannot be opened"):
                self._file: JournalFile | None = JournalFile.acquire(self.path)
        except BaseException:
            self._db.close()
            raise
        try:
            if not readonly:
                with self._guard("cannot be opened"):
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=NORMAL")
                    self._migrate()
            # A schema-0 journal read without migrating has no fingerprint column.
            self._fingerprints = self._has_fingerprints()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        with self._guard("cannot be opened"):
            if self.readonly:
                if not os.path.isfile(self.path):
                    raise JournalError(self.path, "does not exist")
                db = sqlite3.connect(_read_only_uri(self.path), uri=True, isolation_level=None, check_same_thread=False)
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

    def _usable_schema(self) -> tuple[int, set[str]]:
        """The schema version and tables of a journal a run can use, or the :class:`JournalError`
        a run raises for one it cannot (written by a newer version, or not a journal at all)."""
        version = self.schema_version()
        with self._guard("cannot be read"):
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise JournalError(
                self.path,
                f"was written by a newer isales-async (schema {version}; this one knows {SCHEMA_VERSION})",
            )
        if version < SCHEMA_VERSION and "records" not in tables and tables - {"runs"}:
            raise JournalError(self.path, f"is an SQLite file but not a journal (tables: {', '.join(sorted(tables))})")
        return version, tables

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version, tables = self._usable_schema()
            if version < SCHEMA_VERSION:
                if "records" in tables:
                    self._migrate_from_0()
                else:
                    self._db.execute(_RECORDS.format(name="records"))
                self._db.execute(_RUNS)
                self._db.execute(_INDEX)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for statement in _EARLIER_SUCCESSES:
                self._db.execute(statement)
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

    @classmethod
    def snapshot(cls, path: str | PathLike[str]) -> Journal | None:
        """The journal at ``path`` as a run would find it once opened, for reading only.

        What a dry run decides from: a journal a run refuses (written by a newer version,
        not a journal, not writable, in a directory that does not exist) raises the same
        :class:`JournalError`; one of an older schema, or an empty file, is migrated in
        memory by the code that migrates it for a run, so it reads as the run then sees
        it. The file is never changed, and no side file is left beside it. ``None``: there
        is no journal yet, and a run would create it.
        """
        journal = cls._usable(path)
        if journal is not None and journal.schema_version() < SCHEMA_VERSION:
            try:
                journal._migrate_in_memory()
            except BaseException:
                journal.close()
                raise
        return journal

    @classmethod
    def check(cls, path: str | PathLike[str]) -> None:
        """Raise the :class:`JournalError` a run would raise opening ``path``, changing nothing.

        A batch calls it before anything else, so a journal it cannot use costs no request.
        """
        journal = cls._usable(path)
        if journal is not None:
            journal.close()

    @classmethod
    def _usable(cls, path: str | PathLike[str]) -> Journal | None:
        """``path`` opened read-only once sure a run could use it; ``None`` if a run would create it."""
        path = str(path)
        _check_writable(path, os.path.dirname(os.path.abspath(path)))
        if not os.path.exists(path):
            return None
        journal = cls(path, readonly=True)
        try:
            journal._usable_schema()
        except BaseException:
            journal.close()
            raise
        return journal

    def _migrate_in_memory(self) -> None:
        """Replace the read-only connection by a migrated copy in memory; the file stays as it is."""
        memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            with self._guard("cannot be read"):
                self._db.backup(memory)
            with self._guard("cannot be migrated"):
                self._db.close()
                self._db = memory
                self._migrate()
        except BaseException:
            memory.close()
            raise
        self._fingerprints = self._has_fingerprints()

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """End a run still in progress, and close the file."""
        self.end_run()
        self._db.close()
        file, self._file = self._file, None
        if file is not None:
            file.release()  # after SQLite's close: it may close the descriptor SQLite's locks are on

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether this object is in a run (holds the lock)."""
        return self._file is not None and self._file.holder is self

    def begin_run(self) -> int:
        """Take the journal's lock and start a new run; its number is also ``self.run``."""
        if self.readonly:
            raise JournalError(self.path, "was opened read-only; a run needs Journal(path)")
        if self._file is None:
            raise JournalError(self.path, "is closed")
        if self.running:
            raise JournalLockedError(self.path, f"run {self.run} of this same Journal object, still in progress")
        self._file.lock(self)
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
        if self._file is not None and self.running:
            self._file.unlock()

    def _current_run(self) -> int:
        if not self.running or self.run is None:
            raise JournalError(self.path, "is not in a run: call begin_run() first")
        return self.run

    # -- one record -----------------------------------------------------------------------

    def lookup(self, key: str) -> tuple[Status, int, str | None] | None:
        """The status, the last run that claimed it, and the fingerprint of ``key``'s row, if it has one."""
        row = self.lookup_many([key]).get(key)
        return (row.status, row.claimed, row.fingerprint) if row else None

    def lookup_many(self, keys: Sequence[str]) -> dict[str, JournalRow]:
        """The rows of those of ``keys`` the journal has, read in one query a few hundred keys at a time."""
        found: dict[str, JournalRow] = {}
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start : start + _KEYS_PER_QUERY]
            sql = f"SELECT data_id, {_ROW_COLUMNS} FROM records WHERE data_id IN ({','.join('?' * len(chunk))})"
            for key, status, *rest in self._execute("cannot be read", sql, chunk):
                found[key] = JournalRow(Status(status), *rest)
        return found

    def error_code(self, key: str) -> str | None:
        """The server's code of the last failure recorded for ``key`` (``None``: none, or no row)."""
        row = self._execute("cannot be read", "SELECT code FROM records WHERE data_id = ?", (key,)).fetchone()
        return row[0] if row else None

    def mark(
        self, key: str, status: Status, record: dict[str, object] | None = None, fingerprint: str | None = None
    ) -> None:
        """Set ``key``'s status in this run, clearing an earlier error; a given ``record`` and
        ``fingerprint`` replace the stored ones."""
        self.apply([self.marking(key, status, record, fingerprint)])

    def touch(self, key: str) -> None:
        """Claim ``key`` for this run and change nothing else: a later record with it is a duplicate,
        while its state (and the run that set it) stay as they were."""
        self.apply([self.touching(key)])

    def finish(self, key: str, status: Status, error: BaseException | None = None) -> None:
        """Record the outcome of ``key`` in this run."""
        self.apply([self.finishing(key, status, error)])

    # -- writes, applied in groups -----------------------------------------------------------------
    # Each builds what its method above applies, so a batch can queue them for the thread that
    # applies them in groups (:class:`~isales_async.batch._writer.JournalWriter`).

    def marking(
        self, key: str, status: Status, record: dict[str, object] | None = None, fingerprint: str | None = None
    ) -> Write:
        """The write of :meth:`mark`."""
        payload = orjson.dumps(record).decode() if record is not None else None
        return ("mark", key, status.value, self._current_run(), payload, fingerprint, None, None, None, time.time())

    def touching(self, key: str) -> Write:
        """The write of :meth:`touch`."""
        return ("touch", key, None, self._current_run(), None, None, None, None, None, None)

    def finishing(self, key: str, status: Status, error: BaseException | None = None) -> Write:
        """The write of :meth:`finish`."""
        if error is None:
            return ("finish", key, status.value, self._current_run(), None, None, None, None, None, time.time())
        code = getattr(error, "code", None)
        run = self._current_run()
        return ("finish", key, status.value, run, None, None, type(error).__name__, code, str(error), time.time())

    def restoring(self, key: str, row: JournalRow) -> Write:
        """The write that puts back ``key``'s row as :meth:`lookup_many` found it, still claimed
        by this run: for a record whose intent to send was recorded, and that never left.

        The intent set aside the row's success for its run (``earlier_successes``), which
        the row itself holds again once put back.
        """
        self._current_run()
        record = row.record.decode() if row.record is not None else None
        status = row.status.value
        return (
            "restore",
            key,
            status,
            row.run,
            record,
            row.fingerprint,
            row.error_type,
            row.code,
            row.message,
            row.updated,
        )

    def apply(self, writes: Sequence[Write]) -> None:
        """Apply ``writes`` in order, in one transaction committed at once: all or nothing."""
        try:
            if not self._writes_ready:
                for statement in (_OPS_VIEW, *_OPS_TRIGGERS):
                    self._db.execute(statement)
                self._writes_ready = True
            self._db.execute(_APPLY, (orjson.dumps(writes),))
        except sqlite3.Error as exc:
            raise JournalError(self.path, f"cannot be written: {_describe(exc)}") from exc

    # -- reading ---------------------------------------------------------------------------

    def entries(
        self, *statuses: Status, run: int | None = None, claimed: int | None = None, offset: int = 0, limit: int = -1
    ) -> Iterator[JournalEntry]:
        """The rows in ``statuses`` (all when none is given), oldest first; of ``run`` (the run that
        set their state) and ``claimed`` by that run (its input had them), if given;
        ``offset``/``limit`` select a slice without reading the rest."""
        where: list[str] = []
        params: list[object] = []
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += [s.value for s in statuses]
        if run is not None:
            where.append("run = ?")
            params.append(run)
        if claimed is not None:
            where.append("claimed = ?")
            params.append(claimed)
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

    def succeeded_in(self, run: int, offset: int = 0, limit: int = -1) -> Iterator[tuple[str, dict[str, Any]]]:
        """The key and record of each success of ``run``, oldest first, including those a later
        run has since taken over; ``offset``/``limit`` select a slice."""
        sql = _SUCCEEDED_IN.format("data_id, record") + " ORDER BY updated, data_id LIMIT ? OFFSET ?"
        with self._guard("cannot be read"):
            for key, record in self._db.execute(sql, (run, run, limit, offset)):
                yield key, orjson.loads(record) if record else {}

    def count_succeeded_in(self, run: int) -> int:
        """How many records ``run`` applied (see :meth:`succeeded_in`)."""
        return int(self._execute("cannot be read", _SUCCEEDED_IN.format("COUNT(*)"), (run, run)).fetchone()[0])

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


def _read_only_uri(path: str) -> str:
    """The URI that reads ``path`` without writing anything beside it.

    A reader of a journal in WAL mode creates its ``-wal`` and ``-shm`` files, and cannot
    remove them again. With no ``-wal`` beside it, no run has the journal open (a run
    creates it on opening, and the last connection to close folds it back and removes
    it), so the whole journal is in the file, read as ``immutable``: no side file, no
    lock. Otherwise the log holds what a run wrote (a run in progress, or one killed),
    and is read through SQLite's locks.
    """
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    return uri if os.path.exists(path + "-wal") else uri + "&immutable=1"


def _check_writable(path: str, directory: str) -> None:
    """Raise the :class:`JournalError` of a journal a run could not write or create."""
    if not os.path.isdir(directory):
        raise JournalError(path, f"cannot be opened: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise JournalError(path, "cannot be opened: a run could not write it (permission denied)")


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
