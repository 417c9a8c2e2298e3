"""The flow limits of one tenant shared on Redis, by every process that names the tenant.

:class:`RedisLimits` runs the scripts of :mod:`._shared_limits` with redis-py's asyncio
client (the ``isales-async[redis]`` extra, imported when a ``RedisLimits`` is made), each
call bounded by a short timeout. A failure or a timeout never fails a request: the
process keeps to its own limits (today's in-process ones) and says so once, in a
warning and a log line; one caller asks Redis again every ``retry_interval`` seconds,
and the shared limits resume when it answers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
import warnings
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ValidationError
from ._limits import RouteLimit
from ._shared_limits import (
    ADMIT_SCRIPT,
    COOL_DOWN_SCRIPT,
    RENEW_SCRIPT,
    Admit,
    Health,
    TenantKeys,
    check_tenant,
    read_admit,
    redacted_url,
    spacing_wait_ms,
)
from ._validation import check_number

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["RedisLimits"]

logger = logging.getLogger("isales_async")

T = TypeVar("T")

_MISSING_EXTRA = "RedisLimits needs redis-py: install the extra with pip install 'isales-async[redis]'"


def _redis_module() -> Any:
    try:
        import redis.asyncio
    except ImportError:
        raise ImportError(_MISSING_EXTRA) from None
    return redis.asyncio


class _Connection:
    """A redis client of one event loop (redis-py's connections belong to the loop that
    opened them), with the scripts registered on it."""

    def __init__(self, client: aioredis.Redis, *, owned: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.owned = owned
        self.admit = client.register_script(ADMIT_SCRIPT)
        self.renew = client.register_script(RENEW_SCRIPT)
        self.cool_down = client.register_script(COOL_DOWN_SCRIPT)


class RedisLimits:
    """Flow limits shared on Redis by every client, in any process, of one ``tenant``.

    Give it to a client (``ISalesClient(..., limits=RedisLimits(url, tenant="vdn-1"))``)
    and the route limits (``route_limits``: callresult's 10 in flight, more than 1 s
    apart, by default) and the cool-down after a 429 or 503 with ``Retry-After`` hold for
    the tenant as a whole, not per process. Each process keeps its own client-wide
    ``max_concurrency``.

    Each attempt of a limited route holds a lease in Redis while it runs: it expires
    ``lease_seconds`` after its holder last renewed it (a living holder renews its leases
    every third of that), so a killed worker's slots come back within ``lease_seconds``.
    If Redis fails or does not answer within ``timeout``, the process keeps to its own
    limits (the in-process ones), warns once, and asks Redis again every
    ``retry_interval`` seconds; a call's deadline is honoured throughout.

    Give each client its own ``RedisLimits`` (they share by the tenant key, not by the
    object): closing a client closes the Redis connections this object opened.

    Args:
        redis: a Redis URL (``redis://``, ``rediss://``, ``unix://``; a password in it is
            never shown), or a ``redis.asyncio.Redis`` client of your own, which is used as
            it is and never closed.
        tenant: the key every process of one tenant names (e.g. its VDN and host); 1 to
            100 printable ASCII characters without spaces or braces.
        lease_seconds: how long a lease outlives a holder that stopped renewing it.
        timeout: the longest wait for any one Redis call, in seconds.
        retry_interval: how often Redis is asked again after it failed, in seconds.
        key_prefix: the first part of every key (default ``isales``).
    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        *,
        tenant: str,
        lease_seconds: float = 30.0,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        key_prefix: str = "isales",
    ) -> None:
        module = _redis_module()
        self.tenant: str = check_tenant("tenant", tenant)
        self.lease_seconds = _seconds("lease_seconds", lease_seconds)
        self.timeout = _seconds("timeout", timeout)
        self.retry_interval = _seconds("retry_interval", retry_interval)
        self._keys = TenantKeys(self.tenant, check_tenant("key_prefix", key_prefix))
        if isinstance(redis, str):
            if not redis.startswith(("redis://", "rediss://", "unix://")):
                raise ValidationError("redis", "must be a redis://, rediss:// or unix:// URL, or a redis.asyncio.Redis")
            self._url: str | None = redis
            self._where = redacted_url(redis)
            self._given: aioredis.Redis | None = None
        elif isinstance(redis, module.Redis):
            self._url, self._where, self._given = None, "the given Redis client", redis
        else:
            raise ValidationError("redis", f"must be a Redis URL or a redis.asyncio.Redis, got {type(redis).__name__}")
        self._health = Health(self.retry_interval)
        self._connection: _Connection | None = None
        self._held: dict[str, set[str]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        holder = secrets.token_hex(6)  # this object's leases, told apart from every other holder's
        self._lease_ids = (f"{holder}-{n}" for n in itertools.count())

    def __repr__(self) -> str:
        return f"RedisLimits({self._where}, tenant={self.tenant!r}, lease_seconds={self.lease_seconds:g})"

    @property
    def available(self) -> bool:
        """Whether the last call to Redis succeeded (``False`` while keeping to this process's limits)."""
        return not self._health.down

    # -- what Admission asks -------------------------------------------------------

    async def admit(self, route: str, limit: RouteLimit | None, deadline_left: float | None) -> Admit | None:
        """Take a lease on ``route`` (or, without a limit, only check the cool-down);
        ``None`` when Redis cannot be asked: the caller keeps to its process's limits."""
        connection = self._ready()
        if connection is None:
            return None
        lease = next(self._lease_ids)
        keys = self._keys
        args = (
            lease,
            limit.concurrency if limit is not None else 0,
            int(limit.interval * 1000) if limit is not None else 0,
            int(self.lease_seconds * 1000),
            spacing_wait_ms(deadline_left),
        )
        reply = await self._call(
            connection.admit(keys=[keys.leases(route), keys.starts(route), keys.cool_down], args=args)
        )
        if reply is None:
            return None
        admit = read_admit(reply, lease)
        if admit.lease:
            self._hold(route, lease)
        return admit

    async def cool_down_left(self) -> float:
        """Seconds left of the tenant's cool-down (0 when there is none, or Redis cannot say)."""
        connection = self._ready()
        if connection is None:
            return 0.0
        left = await self._call(connection.client.pttl(self._keys.cool_down))
        return max(0, int(left)) / 1000 if left is not None else 0.0

    def release(self, route: str, lease: str) -> None:
        """Give back a lease, in the background (if Redis cannot be told, it expires)."""
        held = self._held.get(route)
        if held is not None:
            held.discard(lease)
        connection = self._ready()
        if connection is not None:
            self._spawn(self._give_back(connection, route, lease))

    async def _give_back(self, connection: _Connection, route: str, lease: str) -> None:
        # One turn of the loop first: a failed attempt's cool-down, published as the session
        # handles its error, goes out before its slot is free for another process.
        await asyncio.sleep(0)
        await self._call(connection.client.zrem(self._keys.leases(route), lease))

    def publish_cool_down(self, seconds: float) -> None:
        """Pause every process of the tenant for ``seconds`` (a ``Retry-After`` within the
        cap), in the background; a longer pause already published is kept."""
        connection = self._ready()
        if connection is not None:
            ms = max(1, int(seconds * 1000))
            self._spawn(self._call(connection.cool_down(keys=[self._keys.cool_down], args=(ms,))))

    async def aclose(self) -> None:
        """Stop renewing, finish the releases under way, and close the connections this
        object opened in the running loop (a client given to it stays open). From another
        loop, what belongs to the loop that made it is let go (its leases expire)."""
        renewer, self._renewer = self._renewer, None
        background, self._background = self._background, set()
        connection, self._connection = self._connection, None
        if connection is None or connection.loop is not asyncio.get_running_loop():
            return
        if renewer is not None:
            renewer.cancel()
        await asyncio.gather(*background, *([renewer] if renewer else []), return_exceptions=True)
        if connection.owned:
            await connection.client.aclose()

    # -- I/O -------------------------------------------------------------------------

    def _ready(self) -> _Connection | None:
        """This loop's connection, if Redis may be asked now."""
        if not self._health.may_ask(time.monotonic()):
            return None
        connection = self._connection
        if connection is None or connection.loop is not asyncio.get_running_loop():
            connection = self._connection = self._connect()
        return connection

    def _connect(self) -> _Connection:
        if self._given is not None:
            return _Connection(self._given, owned=False)
        assert self._url is not None
        client = _redis_module().Redis.from_url(
            self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
        )
        return _Connection(client, owned=True)

    async def _call(self, call: Awaitable[T]) -> T | None:
        """``call``'s answer, or ``None`` when Redis failed or took longer than ``timeout``."""
        try:
            answer = await asyncio.wait_for(call, self.timeout)
        except (OSError, asyncio.TimeoutError, _redis_module().RedisError) as exc:
            self._failed(exc)
            return None
        if self._health.answered():
            logger.warning(
                "shared limits: Redis at %s answers again: the tenant's limits are shared again", self._where
            )
        return answer

    def _failed(self, exc: BaseException) -> None:
        if not self._health.failed(time.monotonic()):
            return
        message = (
            f"shared limits: Redis at {self._where} failed ({type(exc).__name__}): this process keeps to its "
            f"own flow limits until Redis answers again (asked every {self.retry_interval:g}s)"
        )
        logger.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- renewing leases -------------------------------------------------------------

    def _hold(self, route: str, lease: str) -> None:
        self._held.setdefault(route, set()).add(lease)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_while_held())

    async def _renew_while_held(self) -> None:
        """Every third of the lease time, renew the leases this process holds; ends when it holds none."""
        lease_ms = int(self.lease_seconds * 1000)
        while any(self._held.values()):
            await asyncio.sleep(self.lease_seconds / 3)
            for route, leases in list(self._held.items()):
                connection = self._ready()
                if leases and connection is not None:
                    await self._call(connection.renew(keys=[self._keys.leases(route)], args=(lease_ms, *leases)))


def _seconds(field: str, value: float) -> float:
    checked = check_number(field, value, positive=True)
    assert checked is not None
    return checked
