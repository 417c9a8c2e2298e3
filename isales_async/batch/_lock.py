"""The run lock of a batch journal: one exclusive OS lock on the journal file itself.

``flock`` (``msvcrt.locking`` on Windows), which the OS drops when the holder exits or
dies, so no stale lock outlives a crash; ``<journal>.lock`` only says who holds it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sys
import threading
from typing import Protocol

import orjson

from .._errors import JournalLockedError

__all__ = ["JournalFile"]


class _Holder(Protocol):
    """What the lock needs of a journal: the path its errors name."""

    @property
    def path(self) -> str: ...


if sys.platform == "win32":
    import msvcrt

    # One byte far past any journal's data and past SQLite's own lock bytes (at 1 GiB).
    _LOCK_OFFSET = 1 << 40

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except PermissionError:
            return False
        except OSError as exc:
            if exc.errno in (13, 36):  # EACCES, EDEADLOCK: another process holds it
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class JournalFile:
    """The process's one descriptor of a journal file, which the run lock is taken on.

    The lock is on the journal file itself (by device and inode), so a symlink or another
    spelling of the path finds the same lock, and deleting ``<journal>.lock`` (which only
    says who holds it) lets no second run in. There is one descriptor per file per process,
    shared by every ``Journal`` object open on it and closed when the last one closes:
    closing any descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's included.
    """

    def __init__(self, key: tuple[int, int], fd: int, real_path: str) -> None:
        self._key = key
        self._fd = fd
        self._users = 0
        self.holder: _Holder | None = None
        self.info_path = real_path + ".lock"

    @classmethod
    def acquire(cls, path: str) -> JournalFile:
        """The shared descriptor of the file at ``path`` (opened if this process has none)."""
        stat = os.stat(path)
        key = (stat.st_dev, stat.st_ino)
        with _OPEN_FILES_LOCK:
            file = _OPEN_FILES.get(key)
            if file is None:
                file = cls(key, os.open(path, os.O_RDONLY), os.path.realpath(path))
                _OPEN_FILES[key] = file
            file._users += 1
            return file

    def release(self) -> None:
        """One user fewer; the descriptor is closed with its last user."""
        with _OPEN_FILES_LOCK:
            self._users -= 1
            if self._users == 0:
                del _OPEN_FILES[self._key]
                os.close(self._fd)

    def lock(self, journal: _Holder) -> None:
        """Hold the run lock for ``journal``, or raise :class:`JournalLockedError` naming the holder."""
        if self.holder is not None:
            raise JournalLockedError(journal.path, f"this process (pid {os.getpid()}), through another Journal object")
        if not _try_lock(self._fd):
            raise JournalLockedError(journal.path, _describe_holder(self._read_info()))
        self.holder = journal
        self._write_info(
            orjson.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                }
            )
        )

    def unlock(self) -> None:
        self._write_info(b"")  # before unlocking: the next holder writes its own text
        self.holder = None
        _unlock(self._fd)

    def _read_info(self) -> str:
        try:
            with open(self.info_path, "rb") as info:
                return info.read(1000).decode(errors="replace").strip()
        except OSError:
            return ""

    def _write_info(self, text: bytes) -> None:
        # Only a courtesy to the next process refused: the lock itself is on the journal.
        with contextlib.suppress(OSError), open(self.info_path, "wb") as info:
            info.write(text)


_OPEN_FILES: dict[tuple[int, int], JournalFile] = {}
_OPEN_FILES_LOCK = threading.Lock()


def _describe_holder(text: str) -> str:
    try:
        holder = orjson.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, since {holder['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"
