"""Soak: 50,000 writebacks at concurrency 50 against a fake server in its own process,
with random faults. Every outcome accounted for, nothing applied twice, memory flat,
no connection left open. Marked ``soak``; CI runs it (about a minute)."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from isales_async import ISalesClient, Progress, Timeouts
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, Chaos, Fault, fake_server_process, fetch_state

from .test_batch import good

pytestmark = pytest.mark.soak

RECORDS = 50_000


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def established_connections_to(port: int) -> int:
    """Sockets of this process still connected to ``port`` (Linux /proc)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads memory and sockets from Linux /proc")
async def test_soak_50k_writebacks_with_random_faults(tmp_path: Path) -> None:
    rng = random.Random(2026)
    faults = [
        Fault.status_code(503),
        Fault.status_code(429, retry_after="0"),
        Fault.status_code(500),
        Fault.reset(after=True),
        Fault.reset(after=False),
        Fault.raw_body(b"<html>"),
    ]
    records = good(RECORDS)
    samples: list[float] = []

    def sample(progress: Progress) -> None:
        if progress.done % 5000 == 0:
            samples.append(rss_mib())

    with fake_server_process(data_id_count=RECORDS, chaos=Chaos(0.02, faults, rng)) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = ISalesClient(
                base_url, ak=DEFAULT_AK, sk=DEFAULT_SK, vdn_id=1, max_concurrency=50, timeouts=Timeouts(read=5.0)
            )
        async with client:
            report = await client.business_results.write_back_many(
                records, concurrency=50, journal=tmp_path / "soak.journal", on_progress=sample
            )
            assert established_connections_to(port) <= 50
        assert established_connections_to(port) == 0
        state = fetch_state(base_url)

    applied = state["applied"]["callBusiResult"]
    assert report.total == RECORDS
    assert all(n == 1 for n in applied.values()), "a record was applied twice"
    succeeded = {o.key for o in report.succeeded}
    unknown = {o.key for o in report.unknown}
    assert succeeded <= set(applied) and set(applied) - succeeded <= unknown
    assert len(report.succeeded) + len(report.failed) + len(report.unknown) == RECORDS
    # Flat memory: from 10% done to the end (measured: +1.6 MiB, SQLite's page cache and bounded caches).
    assert samples[-1] - samples[1] < 5, samples
