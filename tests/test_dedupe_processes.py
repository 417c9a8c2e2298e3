"""Four receiver processes behind one port share their de-duplication through a real Redis
server, and again through one SQLite file: a push and its re-pushes, several at once,
reach the callback once in total. The workers are ``tests/push_worker.py``; what they do
is counted in files, never in a process's memory."""

from __future__ import annotations

import asyncio
import collections
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import orjson
import pytest

from isales_async.testing import FakeISales

from .redis_server import RedisServer

WORKERS = 4
WORKER = Path(__file__).with_name("push_worker.py")
#: Generous bounds on real time: four processes start on a loaded two-core machine.
START_BOUND = 120.0
ATTEMPTS_BOUND = 500


@attrs.define
class Workers:
    """Four worker processes listening on ``url`` (one port), writing to ``directory``."""

    url: str
    directory: Path
    processes: list[subprocess.Popen[bytes]]

    def lines(self) -> list[list[str]]:
        return [line.split() for line in (self.directory / "log").read_text().splitlines()]

    def calls(self, call_ids: list[str]) -> collections.Counter[str]:
        """How many times the callbacks of all the workers took each of ``call_ids``."""
        wanted = set(call_ids)
        return collections.Counter(line[2] for line in self.lines() if line[0] == "call" and line[2] in wanted)

    def pushed_to(self) -> set[str]:
        """The workers (by pid) that handled a push."""
        return {line[1] for line in self.lines() if line[0] == "push"}


def reserved_port() -> socket.socket:
    """A loopback port the workers can share with ``SO_REUSEPORT``; bound but not listening,
    it takes no connection itself and keeps the port from being handed to anyone else."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_until_ready(process: subprocess.Popen[bytes], errors: Path) -> None:
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], START_BOUND)
    line = process.stdout.readline() if readable else b""
    if line.strip() != b"ready":
        process.kill()
        raise RuntimeError(f"a push worker did not start: {errors.read_text()}")


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def workers(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    directory = tmp_path_factory.mktemp(f"push-{request.param}")
    target = redis_server.url if request.param == "redis" else str(directory / "claims.sqlite")
    if request.param == "redis":
        redis_server.flush()
    with reserved_port() as port_holder:
        port = port_holder.getsockname()[1]
        processes = []
        for number in range(WORKERS):
            errors = directory / f"worker-{number}.err"
            with errors.open("wb") as stderr:
                process = subprocess.Popen(
                    [sys.executable, str(WORKER), str(port), request.param, target, str(directory)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
            processes.append(process)
        for number, process in enumerate(processes):
            wait_until_ready(process, directory / f"worker-{number}.err")
        try:
            yield Workers(f"http://127.0.0.1:{port}/?token=t", directory, processes)
        finally:
            for process in processes:
                assert process.stdin is not None
                process.stdin.close()  # the worker closes its receiver and exits
            returncodes = [process.wait(60) for process in processes]
            for process in processes:
                assert process.stdout is not None
                process.stdout.close()
    assert returncodes == [0] * WORKERS


async def push_until_accepted(url: str, body: bytes) -> list[int]:
    """Push ``body`` as CC-iSales does, again while it is not answered 200 (without the
    ten-minute waits: this test is about who processes it, not when), each push on a new
    connection, so the kernel may hand each to another worker."""
    statuses: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        while not statuses or statuses[-1] != 200:
            assert len(statuses) < ATTEMPTS_BOUND, f"never accepted: {collections.Counter(statuses)}"
            async with session.post(url, data=body) as response:
                statuses.append(response.status)
    return statuses


async def push_once(url: str, body: bytes) -> int:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.post(url, data=body) as response:
        return response.status


def records(count: int, start: int) -> list[dict[str, Any]]:
    return FakeISales().push_records(count=count, start=start)


async def test_a_push_and_its_repushes_reach_the_callback_once_across_four_workers(workers: Workers) -> None:
    pushed = records(count=20, start=0)
    call_ids = [r["callId"] for r in pushed]
    bodies = [orjson.dumps(pushed)] * 8 + [orjson.dumps(pushed[i : i + 10]) for i in (0, 5, 10)]
    concurrent = await asyncio.gather(*(push_until_accepted(workers.url, body) for body in bodies))
    later = [await push_until_accepted(workers.url, orjson.dumps(pushed)) for _ in range(4)]
    assert all(set(statuses) <= {200, 503} for statuses in concurrent)  # 503: another worker held the claim
    assert later == [[200]] * 4  # processed: dropped by whichever worker got it
    assert workers.calls(call_ids) == {call_id: 1 for call_id in call_ids}
    assert len(workers.pushed_to()) >= 2  # the pushes were spread over the workers


async def test_a_failed_callback_on_one_worker_is_processed_once_on_the_repush(workers: Workers) -> None:
    pushed = records(count=5, start=100)
    call_ids = [r["callId"] for r in pushed]
    (workers.directory / f"fail-{call_ids[2]}").touch()  # whichever worker takes it fails, once
    assert await push_until_accepted(workers.url, orjson.dumps(pushed)) == [500, 200]
    assert not (workers.directory / f"fail-{call_ids[2]}").exists()
    assert workers.calls(call_ids) == {call_id: 1 for call_id in call_ids}


async def test_concurrent_repushes_of_a_failing_batch_lose_nothing(workers: Workers) -> None:
    pushed = records(count=5, start=200)
    call_ids = [r["callId"] for r in pushed]
    (workers.directory / f"fail-{call_ids[0]}").touch()
    body = orjson.dumps(pushed)
    concurrent = await asyncio.gather(*(push_until_accepted(workers.url, body) for _ in range(6)))
    # The failure is answered 500 to its push, and to the pushes its worker had waiting on the same batch.
    assert sum(statuses.count(500) for statuses in concurrent) >= 1
    assert all(set(statuses) <= {200, 500, 503} for statuses in concurrent)
    assert all(statuses[-1] == 200 for statuses in concurrent)
    assert workers.calls(call_ids) == {call_id: 1 for call_id in call_ids}


async def test_a_repush_while_another_worker_holds_the_claim_answers_503(workers: Workers) -> None:
    pushed = records(count=3, start=150)
    call_ids = [r["callId"] for r in pushed]
    hold = workers.directory / f"hold-{call_ids[0]}"
    os.mkfifo(hold)
    body = orjson.dumps(pushed)
    first = asyncio.ensure_future(push_once(workers.url, body))
    # Opening the FIFO for writing returns once the callback, holding the claim, opened it.
    gate = await asyncio.wait_for(asyncio.to_thread(hold.open, "wb"), START_BOUND)
    try:
        # A re-push on the holding worker waits for its batch; one on any other is answered
        # at once. Of twelve, each on a new connection, one lands elsewhere but with
        # probability 4**-12 (all on the holder): then nothing comes back and the bound fails.
        repushes = [asyncio.ensure_future(push_once(workers.url, body)) for _ in range(12)]
        done, _ = await asyncio.wait(repushes, timeout=START_BOUND, return_when=asyncio.FIRST_COMPLETED)
        assert done
        assert {task.result() for task in done} == {503}
    finally:
        gate.close()
        hold.unlink()
    assert await first == 200
    assert set(await asyncio.gather(*repushes)) <= {200, 503}
    assert workers.calls(call_ids) == {call_id: 1 for call_id in call_ids}
