"""Flow limits shared by every process of one tenant: what is decided, without I/O.

The state lives in Redis, and each decision is one Lua script run atomically on the
Redis server, on the Redis server's clock, so processes on hosts whose clocks differ
still agree. This module holds the scripts, the key names, how a script's reply reads
(:func:`read_admit`), how long a caller polls a full route (:func:`busy_delay`), and the
small state machine that decides when Redis is tried again after it failed
(:class:`Health`). :mod:`._redis_limits` runs them; :mod:`._limits` acts on the answers.

A route's state is two sorted sets:

- its leases: one member per attempt in flight anywhere, scored by the time (ms) it
  expires. A holder renews its leases while it lives; a crashed one stops renewing, so
  its slots come back within the lease time. Expired members are dropped before counting.
- its starts: the start times (ms) reserved for its last ``concurrency`` attempts. A new
  attempt starts no sooner than a hair past ``interval`` after the oldest of them, so at
  most ``concurrency`` starts fall in any window longer than ``interval`` (the rule
  :class:`~isales_async._limits.RouteGate` keeps within one process).

The tenant's cool-down is one key whose time to live is what is left of the longest
``Retry-After`` any process was told; relative times, so no clock needs to agree.
"""

from __future__ import annotations

import enum
import re

import attrs

from ._errors import ValidationError

__all__ = [
    "ADMIT_SCRIPT",
    "COOL_DOWN_SCRIPT",
    "RENEW_SCRIPT",
    "Admit",
    "AdmitKind",
    "Health",
    "TenantKeys",
    "busy_delay",
    "check_tenant",
    "read_admit",
    "redacted_url",
    "spacing_wait_ms",
]


class AdmitKind(enum.Enum):
    """What the admission script answered."""

    ADMITTED = 0  # the lease is taken; ``seconds``: the spacing wait before starting
    COOLING = 1  # the tenant is paused; ``seconds``: what is left of the pause
    BUSY = 2  # the route is full; ``seconds``: until its first lease expires
    LATE = 3  # the spacing wait (``seconds``) would pass the call's deadline; nothing taken


@attrs.frozen
class Admit:
    """An answer of the admission script: its kind, a wait in seconds, and the lease id."""

    kind: AdmitKind
    seconds: float
    lease: str = ""


#: KEYS: leases, starts, cool-down. ARGV: lease id, concurrency (0: the route has no
#: limit, only the cool-down is checked), interval ms, lease ms, the longest wait ms the
#: call's deadline allows (-1: no deadline). Replies {kind, ms} (see :class:`AdmitKind`).
ADMIT_SCRIPT = """
local cool = redis.call('PTTL', KEYS[3])
if cool > 0 then return {1, cool} end
local limit = tonumber(ARGV[2])
if limit == 0 then return {0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {2, math.max(1, tonumber(first[2]) - now)}
end
local interval = tonumber(ARGV[3])
local start = now
if redis.call('ZCARD', KEYS[2]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[2], -limit, -limit, 'WITHSCORES')
  start = math.max(now, tonumber(oldest[2]) + interval + 1)
end
local wait = start - now
local max_wait = tonumber(ARGV[5])
if max_wait >= 0 and wait > max_wait then return {3, wait} end
local lease_ms = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], start + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], wait + lease_ms + 1000)
redis.call('ZADD', KEYS[2], start, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(limit + 1))
redis.call('PEXPIRE', KEYS[2], wait + interval + 1000)
return {0, wait}
"""

#: KEYS: leases. ARGV: lease ms, then the lease ids a living holder still holds. A lease
#: already released (or expired and dropped) is not brought back; none is shortened.
RENEW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < until_ms then
    redis.call('ZADD', KEYS[1], until_ms, ARGV[i])
    renewed = renewed + 1
  end
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) + 1000 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 1000)
end
return renewed
"""

#: KEYS: cool-down. ARGV: its length in ms. A pause never shortens a longer one.
COOL_DOWN_SCRIPT = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return 1
end
return 0
"""

_TENANT = re.compile(r"[!-z|~]{1,100}")  # printable ASCII without braces (Redis Cluster hash tags)


def check_tenant(field: str, value: object) -> str:
    """A tenant key: 1 to 100 printable ASCII characters, without spaces or braces."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not _TENANT.fullmatch(value):
        raise ValidationError(
            field, f"must be 1 to 100 printable ASCII characters without spaces or braces, got {value!r}"
        )
    return value


@attrs.frozen
class TenantKeys:
    """The Redis keys of one tenant; the ``{tenant}`` hash tag keeps them in one Redis
    Cluster slot, as a script's keys must be."""

    tenant: str
    prefix: str = "isales"

    def leases(self, route: str) -> str:
        return f"{self.prefix}:{{{self.tenant}}}:leases:{route}"

    def starts(self, route: str) -> str:
        return f"{self.prefix}:{{{self.tenant}}}:starts:{route}"

    @property
    def cool_down(self) -> str:
        return f"{self.prefix}:{{{self.tenant}}}:cool-down"


def read_admit(reply: object, lease: str) -> Admit:
    """The admission script's ``[kind, ms]`` reply as an :class:`Admit` (``lease`` kept only
    when it was taken); anything else is a :class:`ValueError`, as from a wrong server."""
    if not isinstance(reply, (list, tuple)) or len(reply) != 2:
        raise ValueError(f"the admission script answered {reply!r}")
    kind = AdmitKind(int(reply[0]))
    return Admit(kind, max(0, int(reply[1])) / 1000, lease if kind is AdmitKind.ADMITTED else "")


def spacing_wait_ms(deadline_left: float | None) -> int:
    """The longest spacing wait (ms) a call with ``deadline_left`` seconds may reserve; -1: any."""
    return -1 if deadline_left is None else max(0, int(deadline_left * 1000))


def busy_delay(polls: int, until_free: float) -> float:
    """How long a caller waits before asking a full route again: 2 ms doubling to 64 ms
    for each poll in a row, never past the moment its first lease expires (at least 1 ms)."""
    return max(0.001, min(until_free, 0.002 * 2.0 ** min(max(polls, 1) - 1, 5)))


@attrs.define
class Health:
    """Whether the shared limits may ask Redis now: after a failure, only once every
    ``retry_interval`` seconds (one caller probes; the others keep to their process's
    own limits meanwhile), until Redis answers again.

    Fed the readings of a monotonic clock, without I/O.
    """

    retry_interval: float
    down_since: float | None = None
    retry_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def may_ask(self, now: float) -> bool:
        """Whether to ask Redis now; while it is down, ``True`` for one probe per interval."""
        if self.down_since is None:
            return True
        if now < self.retry_at:
            return False
        self.retry_at = now + self.retry_interval
        return True

    def failed(self, now: float) -> bool:
        """Redis failed a call: whether that begins an outage (then it is said, once)."""
        began = self.down_since is None
        if began:
            self.down_since = now
        self.retry_at = now + self.retry_interval
        return began

    def answered(self) -> bool:
        """Redis answered: whether that ends an outage."""
        ended = self.down_since is not None
        self.down_since = None
        return ended


_USER_INFO = re.compile(r"(?<=://)[^@/]*@")


def redacted_url(url: str) -> str:
    """``url`` without its user info (a Redis URL may carry a password), as logs may show it."""
    without_query = url.split("?", 1)[0]
    return _USER_INFO.sub("***@", without_query, count=1)
