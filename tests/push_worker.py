"""One receiver worker process for ``tests/test_dedupe_processes.py``.

``python tests/push_worker.py PORT STORE TARGET DIRECTORY`` serves a :class:`PushReceiver`
(token ``t``) on ``127.0.0.1:PORT`` with ``SO_REUSEPORT``, so several workers listen on
one port and the kernel spreads the connections among them, as behind gunicorn. ``STORE``
is ``redis`` (``TARGET`` a URL) or ``sqlite`` (``TARGET`` a file). What the workers do
is counted in files of ``DIRECTORY``, not in their memory:

- ``log``: a line ``push PID`` for each push handled, ``call PID CALLID`` for each call
  ID the callback took (appended with ``O_APPEND``: one ``write`` per line, so lines
  from several processes never mix);
- ``fail-CALLID``: a batch holding that call ID fails, once in total (the worker that
  removes the file fails it);
- ``hold-CALLID``, a FIFO: the callback on that call ID opens it for reading and holds
  its batch until the test, which opened it for writing (and so knows the callback
  runs), closes it.

It prints ``ready`` once it listens, and stops (closing its receiver) when its stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from isales_async import CallResult, PushReceiver, PushResponse
from isales_async.receivers import DedupeStore, RedisDedupeStore, SqliteDedupeStore, aiohttp_app


class Worker:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = os.open(directory / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def note(self, line: str) -> None:
        os.write(self.log, f"{line}\n".encode())

    async def callback(self, results: Sequence[CallResult]) -> None:
        for result in results:
            hold = self.directory / f"hold-{result.call_id}"
            if hold.exists():
                await asyncio.get_running_loop().run_in_executor(None, hold.read_bytes)
        for result in results:
            try:
                (self.directory / f"fail-{result.call_id}").unlink()
            except FileNotFoundError:
                continue
            raise RuntimeError(f"failing the batch of {result.call_id} once, as asked")
        for result in results:
            self.note(f"call {os.getpid()} {result.call_id}")


class CountingReceiver(PushReceiver):
    def __init__(self, worker: Worker, store: DedupeStore) -> None:
        super().__init__(worker.callback, token="t", dedupe_store=store)
        self.worker = worker

    async def handle(self, body: bytes, *, token: str | None = None, client_ip: str | None = None) -> PushResponse:
        self.worker.note(f"push {os.getpid()}")
        return await super().handle(body, token=token, client_ip=client_ip)


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def serve(port: int, store: DedupeStore, directory: Path) -> None:
    runner = web.AppRunner(aiohttp_app(CountingReceiver(Worker(directory), store)), access_log=None)
    await runner.setup()
    await web.SockSite(runner, listening_socket(port)).start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes our stdin
    await runner.cleanup()  # on_shutdown closes the receiver, and its store


def main(port: str, kind: str, target: str, directory: str) -> None:
    store = RedisDedupeStore(target) if kind == "redis" else SqliteDedupeStore(target)
    asyncio.run(serve(int(port), store, Path(directory)))


if __name__ == "__main__":
    main(*sys.argv[1:])
