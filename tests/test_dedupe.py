"""De-duplication stores: the same claim/processed/release semantics in memory, in SQLite
and in a real Redis server, and receivers that share one (in one process: each receiver
stands for a worker; ``test_dedupe_processes`` runs real worker processes)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
import redis.asyncio

from isales_async import CallResult, PushReceiver, ValidationError
from isales_async.receivers import Claim, DedupeStore, MemoryDedupeStore, RedisDedupeStore, SqliteDedupeStore
from isales_async.testing import FakeClock, FakeISales

from .redis_server import running_redis

KINDS = ["memory", "sqlite", "redis"]
TAKEN, PROCESSED, HELD = Claim.TAKEN, Claim.PROCESSED, Claim.HELD

MakeStore = Callable[[], DedupeStore]


@pytest_asyncio.fixture(params=KINDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Make stores of one kind that share their entries, as the workers of one deployment do
    (memory: the same store; SQLite: one file; Redis: one server)."""
    stores: list[DedupeStore] = []
    memory = MemoryDedupeStore()
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    def make() -> DedupeStore:
        store: DedupeStore
        if request.param == "memory":
            store = memory
        elif request.param == "sqlite":
            store = SqliteDedupeStore(tmp_path / "claims.sqlite")
        else:
            store = RedisDedupeStore(url)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


async def test_a_call_id_is_taken_by_one_claimer_and_held_against_the_others(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    assert await first.claim(["a", "b"], "t1", 60) == [TAKEN, TAKEN]
    assert await second.claim(["b", "c", "a"], "t2", 60) == [HELD, TAKEN, HELD]
    assert await second.claim([], "t2", 60) == []


async def test_processed_call_ids_are_dropped_by_every_claimer(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    await first.claim(["a", "b"], "t1", 60)
    await first.processed(["a", "b"], "t1", 3600)
    assert await second.claim(["a", "b", "c"], "t2", 60) == [PROCESSED, PROCESSED, TAKEN]
    await second.processed(["d"], "t2", 3600)  # nobody held it: remembered all the same
    assert await first.claim(["d"], "t1", 60) == [PROCESSED]


async def test_only_the_claimer_releases_or_marks_its_claim(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    await first.claim(["a"], "t1", 60)
    await second.release(["a"], "t2")
    await second.processed(["a"], "t2", 3600)
    assert await second.claim(["a"], "t2", 60) == [HELD]
    await first.release(["a"], "t1")
    assert await second.claim(["a"], "t2", 60) == [TAKEN]
    await first.release(["a"], "t1")  # no longer ours: the second claimer's claim stays
    assert await first.claim(["a"], "t1", 60) == [HELD]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_claim_expires_at_its_ttl_and_a_processed_id_at_the_window(kind: str, tmp_path: Path) -> None:
    """On the store's clock (Redis expires keys on its own: see the Redis tests below)."""
    clock = FakeClock(autojump=False)
    first: DedupeStore
    second: DedupeStore
    if kind == "memory":
        first = second = MemoryDedupeStore(clock)
    else:
        first, second = (SqliteDedupeStore(tmp_path / "claims.sqlite", clock=clock) for _ in range(2))
    await first.claim(["a", "b"], "t1", 10)
    await first.processed(["b"], "t1", 60)
    clock.advance(9.9)
    assert await second.claim(["a", "b"], "t2", 10) == [HELD, PROCESSED]
    clock.advance(0.1)
    assert await second.claim(["a", "b"], "t2", 10) == [TAKEN, PROCESSED]
    await second.processed(["a"], "t2", 60)
    clock.advance(49.9)
    assert await first.claim(["a", "b"], "t1", 10) == [PROCESSED, PROCESSED]
    clock.advance(0.1)  # b was processed 60 s ago
    assert await first.claim(["a", "b"], "t1", 10) == [PROCESSED, TAKEN]
    clock.advance(10)  # a was processed 60 s ago
    assert await first.claim(["a"], "t1", 10) == [TAKEN]
    await first.aclose()
    await second.aclose()


async def test_a_redis_claim_lives_ttl_and_a_processed_id_the_window(redis_url: str) -> None:
    store = RedisDedupeStore(redis_url, key_prefix="p:")
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await store.claim(["a"], "t1", 10)
        assert 0 < await raw.pttl("p:a") <= 10_000
        await store.processed(["a"], "t1", 3600)
        assert 10_000 < await raw.pttl("p:a") <= 3_600_000
        assert await raw.get("p:a") == b"processed"
    finally:
        await raw.aclose()
        await store.aclose()


async def test_a_redis_claim_expires_by_itself(redis_url: str) -> None:
    store = RedisDedupeStore(redis_url)
    try:
        assert await store.claim(["a"], "t1", 0.05) == [TAKEN]
        found = [HELD]
        for _ in range(1000):  # a bound, not a duration: Redis expires the key on its own clock
            found = await store.claim(["a"], "t2", 60)
            if found != [HELD]:
                break
            await asyncio.sleep(0.01)
        assert found == [TAKEN]
    finally:
        await store.aclose()


class Calls:
    """A worker's callback: records its batches; can fail once or block on demand."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, results: Sequence[CallResult]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail = False
            raise RuntimeError("the user's database is down")
        self.batches.append([r.call_id or "" for r in results])


def push_body(count: int = 3, start: int = 0) -> bytes:
    return orjson.dumps(FakeISales().push_records(count=count, start=start))


Workers = list[tuple[Calls, PushReceiver]]


@pytest_asyncio.fixture
async def workers(make_store: MakeStore) -> AsyncIterator[Workers]:
    """Two receivers, each standing for a worker, with their callbacks, sharing one store's entries."""
    pair = [(calls, PushReceiver(calls, token="t", dedupe_store=make_store())) for calls in (Calls(), Calls())]
    yield pair
    for _, receiver in pair:
        await receiver.aclose()


async def test_a_repush_to_another_worker_is_dropped(workers: Workers) -> None:
    (a, first), (b, second) = workers
    body = push_body()
    assert (await first.handle(body, token="t")).status == 200
    assert (await second.handle(body, token="t")).status == 200
    assert len(a.batches[0]) == 3 and b.batches == []


async def test_a_repush_while_another_worker_holds_the_claim_answers_503(workers: Workers) -> None:
    (a, first), (b, second) = workers
    a.gate = asyncio.Event()
    body = push_body()
    running = asyncio.ensure_future(first.handle(body, token="t"))
    await a.entered.wait()
    held = await second.handle(body, token="t")
    assert (held.status, held.message) == (503, "another worker is processing these call IDs; push again later")
    a.gate.set()
    assert (await running).status == 200
    assert (await second.handle(body, token="t")).status == 200
    assert len(a.batches) == 1 and b.batches == []


async def test_a_failed_callback_releases_its_claim_and_the_repush_is_processed_once(workers: Workers) -> None:
    (a, first), (b, second) = workers
    a.fail = True
    body = push_body()
    assert (await first.handle(body, token="t")).status == 500
    assert (await second.handle(body, token="t")).status == 200
    assert (await first.handle(body, token="t")).status == 200
    assert a.batches == [] and len(b.batches) == 1


async def test_a_push_with_some_call_ids_held_elsewhere_processes_the_others_and_answers_503(
    workers: Workers,
) -> None:
    (a, first), (b, second) = workers
    a.gate = asyncio.Event()
    running = asyncio.ensure_future(first.handle(push_body(count=2), token="t"))
    await a.entered.wait()
    assert (await second.handle(push_body(count=4), token="t")).status == 503
    assert b.batches == [[r["callId"] for r in FakeISales().push_records(count=2, start=2)]]
    a.gate.set()
    assert (await running).status == 200
    assert (await second.handle(push_body(count=4), token="t")).status == 200  # the re-push: all four taken now
    assert len(b.batches) == 1


async def test_a_claim_lasts_the_callback_timeout_and_a_grace_so_a_dead_workers_claim_frees_itself() -> None:
    clock = FakeClock(autojump=False)
    store = MemoryDedupeStore(clock)
    calls = Calls()
    receiver = PushReceiver(calls, token="t", dedupe_store=store, callback_timeout=30, dedupe_window=3600)
    body = push_body(count=1)
    (call_id,) = [r["callId"] for r in FakeISales().push_records(count=1)]
    assert await store.claim([call_id], "a worker that died", 90) == [TAKEN]  # what a receiver like ours takes
    assert (await receiver.handle(body, token="t")).status == 503
    clock.advance(89.9)
    assert (await receiver.handle(body, token="t")).status == 503
    clock.advance(0.1)
    assert (await receiver.handle(body, token="t")).status == 200
    assert calls.batches == [[call_id]]
    clock.advance(3599.9)  # the window counts from the processing
    assert await store.claim([call_id], "another", 90) == [PROCESSED]
    await receiver.aclose()


async def test_a_timed_out_callback_holds_its_claims_until_it_ends_then_releases_them(make_store: MakeStore) -> None:
    """The callback is cancelled at the timeout; until it has ended, another worker's
    re-push finds the claim (503), not a free call ID to run beside it."""
    clock = FakeClock(autojump=False)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(results: Sequence[CallResult]) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # its cleanup outlasts the cancellation

    b = Calls()
    first = PushReceiver(slow, token="t", dedupe_store=make_store(), callback_timeout=30, clock=clock)
    second = PushReceiver(b, token="t", dedupe_store=make_store())
    body = push_body()
    timing_out = asyncio.ensure_future(first.handle(body, token="t"))
    await entered.wait()
    await clock.wait_for_sleepers(1)
    clock.advance(30)
    assert (await timing_out).status == 503
    assert (await second.handle(body, token="t")).status == 503
    release.set()
    await asyncio.wait(set(first._abandoned))
    while first._settling:  # the release in the store, bounded by the store's own timeouts
        await asyncio.wait(set(first._settling))
    assert (await second.handle(body, token="t")).status == 200
    assert len(b.batches) == 1
    await first.aclose()
    await second.aclose()


class WrongStore(MemoryDedupeStore):
    """A store that breaks the protocol: fewer answers than call IDs."""

    async def claim(self, call_ids: Sequence[str], token: str, ttl: float) -> list[Claim]:
        return (await super().claim(call_ids, token, ttl))[:-1]


async def test_a_store_that_answers_for_fewer_call_ids_than_it_was_asked_gets_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Calls()
    receiver = PushReceiver(calls, token="t", dedupe_store=WrongStore())
    with caplog.at_level(logging.ERROR, logger="isales_async.push"):
        assert (await receiver.handle(push_body(), token="t")).status == 503
    assert "failed to claim a push" in caplog.text
    assert calls.batches == []
    await receiver.aclose()


class RecordingStore(MemoryDedupeStore):
    def __init__(self) -> None:
        super().__init__()
        self.ttls: list[float] = []
        self.windows: list[float] = []

    async def claim(self, call_ids: Sequence[str], token: str, ttl: float) -> list[Claim]:
        self.ttls.append(ttl)
        return await super().claim(call_ids, token, ttl)

    async def processed(self, call_ids: Sequence[str], token: str, window: float) -> None:
        self.windows.append(window)
        await super().processed(call_ids, token, window)


@pytest.mark.parametrize(
    ("callback_timeout", "window", "ttl"), [(30, 3600, 90), (None, 3600, 3600), (30, 50, 90), (60, 86400, 120)]
)
async def test_the_claim_ttl_is_the_callback_timeout_and_a_grace_even_past_the_window(
    callback_timeout: float | None, window: float, ttl: float
) -> None:
    store = RecordingStore()
    receiver = PushReceiver(
        Calls(), token="t", dedupe_store=store, callback_timeout=callback_timeout, dedupe_window=window
    )
    assert (await receiver.handle(push_body(), token="t")).status == 200
    assert (store.ttls, store.windows) == ([ttl], [window])
    await receiver.aclose()


async def test_while_redis_is_unreachable_pushes_get_503_and_none_is_lost(caplog: pytest.LogCaptureFixture) -> None:
    with running_redis() as server:
        calls = Calls()
        receiver = PushReceiver(calls, token="t", dedupe_store=RedisDedupeStore(server.url, timeout=5))
        body = push_body()
        assert (await receiver.handle(body, token="t")).status == 200
        fresh = push_body(count=2, start=3)
        server.stop()
        with caplog.at_level(logging.ERROR, logger="isales_async.push"):
            answer = await receiver.handle(fresh, token="t")
            assert (answer.status, answer.message) == (503, "the de-duplication store is unreachable; push again later")
            assert (await receiver.handle(body, token="t")).status == 503  # never processed without a claim
        assert "failed to claim a push" in caplog.text
        assert len(calls.batches) == 1
        server.start()  # without persistence, as here, a restarted Redis has forgotten what was processed
        assert (await receiver.handle(fresh, token="t")).status == 200  # the server's re-push
        assert [len(batch) for batch in calls.batches] == [3, 2]
        await receiver.aclose()


async def test_a_failed_release_is_logged_and_the_claim_expires_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    with running_redis() as server:
        calls = Calls()
        calls.gate = asyncio.Event()
        calls.fail = True
        receiver = PushReceiver(calls, token="t", dedupe_store=RedisDedupeStore(server.url))
        running = asyncio.ensure_future(receiver.handle(push_body(), token="t"))
        await calls.entered.wait()
        server.stop()
        with caplog.at_level(logging.ERROR, logger="isales_async.push"):
            calls.gate.set()
            assert (await running).status == 500
        assert "failed to record a batch failed; its claims expire in 120.0 s" in caplog.text
        await receiver.aclose()


async def test_an_unusable_sqlite_file_gets_503(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    store = SqliteDedupeStore(tmp_path / "missing" / "claims.sqlite")
    receiver = PushReceiver(calls, token="t", dedupe_store=store)
    with caplog.at_level(logging.ERROR, logger="isales_async.push"):
        assert (await receiver.handle(push_body(), token="t")).status == 503
    assert "unable to open database file" in caplog.text
    (tmp_path / "missing").mkdir()
    assert (await receiver.handle(push_body(), token="t")).status == 200  # the store opens the file when it can
    assert len(calls.batches) == 1
    await receiver.aclose()


async def test_the_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    store = SqliteDedupeStore(tmp_path / "claims.sqlite")
    await store.claim(["a"], "t1", 60)
    await store.aclose()
    await store.aclose()
    db = sqlite3.connect(tmp_path / "claims.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT call_id, token FROM push_claims").fetchall() == [("a", "t1")]
    finally:
        db.close()  # a connection's "with" commits, it does not close (Python 3.13 warns)


async def test_a_redis_password_appears_in_no_repr_nor_log(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-pa55"
    for url in (f"redis://user:{secret}@127.0.0.1:1/0", f"redis://127.0.0.1:1/0?password={secret}"):
        store = RedisDedupeStore(url)
        assert secret not in repr(store)
        await store.aclose()
    reachable = RedisDedupeStore(redis_url.replace("unix://", f"unix://:{secret}@"))
    unreachable = RedisDedupeStore(f"unix://:{secret}@{tmp_path}/nobody.sock")
    assert (
        repr(unreachable) == f"RedisDedupeStore('unix://:***@{tmp_path}/nobody.sock', key_prefix='isales-async:push:')"
    )
    receivers = [PushReceiver(Calls(), token="t", dedupe_store=store) for store in (reachable, unreachable)]
    with caplog.at_level(logging.DEBUG):
        assert [(await r.handle(push_body(), token="t")).status for r in receivers] == [200, 503]
    assert "failed to claim a push" in caplog.text
    assert secret not in caplog.text
    for receiver in receivers:
        await receiver.aclose()


def test_without_redis_py_the_redis_store_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r'pip install "isales-async\[redis\]"'):
        RedisDedupeStore("redis://localhost")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: SqliteDedupeStore(""), "path"),
        (lambda: SqliteDedupeStore(3), "path"),  # type: ignore[arg-type]
        (lambda: SqliteDedupeStore("x.sqlite", busy_timeout=0), "busy_timeout"),
        (lambda: RedisDedupeStore(""), "url"),
        (lambda: RedisDedupeStore("http://localhost"), "url"),
        (lambda: RedisDedupeStore("redis://localhost", timeout=-1), "timeout"),
        (lambda: RedisDedupeStore("redis://localhost", key_prefix=None), "key_prefix"),  # type: ignore[arg-type]
        (lambda: PushReceiver(Calls(), token="t", dedupe_window=0), "dedupe_window"),
        (lambda: PushReceiver(Calls(), token="t", dedupe_window=True), "dedupe_window"),
        (lambda: MemoryDedupeStore(clock="now"), "clock"),  # type: ignore[arg-type]
    ],
)
def test_store_options_are_checked(make: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    assert caught.value.field == field


def test_a_bad_redis_url_is_refused_without_echoing_its_password() -> None:
    with pytest.raises(ValidationError) as caught:
        RedisDedupeStore("http://user:hunter2@localhost")
    assert "hunter2" not in str(caught.value)
