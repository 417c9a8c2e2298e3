"""A :class:`~isales_async.receivers.DedupeStore` on Redis, shared by every process that reaches it
(``pip install "isales-async[redis]"``)."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._errors import ValidationError
from ._dedupe import Claim, check_seconds

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisDedupeStore", "redacted_url"]

_PROCESSED = "processed"
# Each script walks its KEYS in one atomic step: one round trip for a whole push.
_CLAIM = """
local found = {}
for i, key in ipairs(KEYS) do
    if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
        found[i] = 0
    else
        local holder = redis.call('GET', key)
        if holder == 'processed' then
            found[i] = 1
        elseif holder == ARGV[1] then
            redis.call('PEXPIRE', key, ARGV[2]) -- our own claim, renewed (or resent after its answer was lost)
            found[i] = 0
        else
            found[i] = 2
        end
    end
end
return found
"""
_MARK_PROCESSED = """
for _, key in ipairs(KEYS) do
    local holder = redis.call('GET', key)
    if holder == false or holder == ARGV[1] then
        redis.call('SET', key, 'processed', 'PX', ARGV[2])
    end
end
return 0
"""
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        released = released + redis.call('DEL', key)
    end
end
return released
"""
_FOUND = (Claim.TAKEN, Claim.PROCESSED, Claim.HELD)


class RedisDedupeStore:
    """Claims in Redis, for workers on several hosts (pods) or processes that share a Redis.

    A claim is ``SET key "claim:<token>" NX PX <ttl>``; once processed the key holds
    ``processed`` for the window (its own ``PX``: Redis forgets it, nothing to clean up);
    a release deletes the key only while it still holds the caller's token (a Lua
    compare-and-delete), so a worker whose claim expired never frees another's. Each
    operation is one script over the push's keys, ``key_prefix`` + callId; in a Redis
    Cluster put a hash tag in the prefix (``"{isales-push}:"``) so they share a slot.

    Args:
        url: what ``redis.asyncio.Redis.from_url`` takes (``redis://``, ``rediss://``,
            ``unix://``). Its password never appears in a repr or a log line.
        key_prefix: the namespace of the keys; receivers that must see each other's
            pushes use the same one.
        timeout: seconds to connect and to wait for an answer; past it the receiver
            answers 503 (the server pushes again) and processes nothing.
    """

    def __init__(self, url: str, *, key_prefix: str = "isales-async:push:", timeout: float = 5.0) -> None:
        if not isinstance(url, str) or not url:
            raise ValidationError("url", f"must be a Redis URL, got {type(url).__name__}")
        if not isinstance(key_prefix, str):
            raise ValidationError("key_prefix", f"must be a string, got {type(key_prefix).__name__}")
        try:
            self.url = redacted_url(url)
        except ValueError:
            raise ValidationError("url", "is not a URL") from None  # not echoed: it may hold a password
        self.key_prefix = key_prefix
        self._redis = _connect(url, check_seconds("timeout", timeout))
        self._claim = self._redis.register_script(_CLAIM)
        self._mark_processed = self._redis.register_script(_MARK_PROCESSED)
        self._release = self._redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisDedupeStore({self.url!r}, key_prefix={self.key_prefix!r})"

    async def claim(self, call_ids: Sequence[str], token: str, ttl: float) -> list[Claim]:
        if not call_ids:
            return []
        found = await self._claim(keys=self._keys(call_ids), args=[_value(token), _milliseconds(ttl)])
        return [_FOUND[int(code)] for code in found]

    async def processed(self, call_ids: Sequence[str], token: str, window: float) -> None:
        if call_ids:
            await self._mark_processed(keys=self._keys(call_ids), args=[_value(token), _milliseconds(window)])

    async def release(self, call_ids: Sequence[str], token: str) -> None:
        if call_ids:
            await self._release(keys=self._keys(call_ids), args=[_value(token)])

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _keys(self, call_ids: Sequence[str]) -> list[str]:
        return [self.key_prefix + call_id for call_id in call_ids]


def _value(token: str) -> str:
    """The value of a claimed key: never ``processed``, whatever the token."""
    return f"claim:{token}"


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _connect(url: str, timeout: float) -> redis.asyncio.Redis:
    try:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise ImportError('RedisDedupeStore needs redis-py: pip install "isales-async[redis]"') from None
    try:
        # One retry at once: a pooled connection may be stale after Redis restarted;
        # more would keep the pusher waiting where a 503 lets the server push again.
        client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
        )
    except ValueError:
        raise ValidationError("url", f"is not a Redis URL: {redacted_url(url)!r}") from None
    return client


def redacted_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) as ``***``."""
    parts = urllib.parse.urlsplit(url)
    params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and all(key != "password" for key, _ in params):
        return url
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}:***@{host}" if parts.password is not None else parts.netloc
    query = urllib.parse.urlencode([(key, "***" if key == "password" else value) for key, value in params], safe="*")
    # Not urlunsplit: it drops the "//" of an empty authority (unix:///path).
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
