"""The Redis server the shared-state tests run against is real, and restartable."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

from .redis_server import RedisServer, running_redis


async def test_the_fixture_is_a_real_redis_server_emptied_for_each_test(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        assert await client.set("k", "v", nx=True, px=1000)
        assert not await client.set("k", "w", nx=True, px=1000)
        assert await client.get("k") == b"v"
        assert 0 < await client.pttl("k") <= 1000
    finally:
        await client.aclose()


def test_a_stopped_server_refuses_connections_until_it_is_started_again() -> None:
    with running_redis() as server:
        sync = redis.Redis.from_url(server.url)
        assert sync.ping()
        server.stop()
        with pytest.raises(redis.ConnectionError):
            sync.ping()
        server.start()
        assert sync.ping()
        sync.close()


def test_the_server_listens_on_a_unix_socket_only(redis_server: RedisServer) -> None:
    assert redis_server.url == f"unix://{redis_server.socket_path}"
    assert redis.Redis.from_url(redis_server.url).config_get("port") == {"port": "0"}
