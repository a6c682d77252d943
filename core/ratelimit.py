"""Token-bucket rate limits in Redis: several buckets checked and charged in one round trip.

A Lua script reads every bucket, refills it from the elapsed time (Redis' own clock, so
several web processes agree), and charges all of them only when all have a token: a
request refused by its per-token bucket does not also drain the shared per-IP bucket.

Redis is transport, not the ledger: when it is unreachable the limiter lets requests
through (logged) rather than refusing alerts that are otherwise valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.logs import get_logger

# KEYS: n bucket keys, then n "denied" marker keys.
# ARGV: per bucket, capacity then refill rate in tokens per millisecond; then the marker TTL.
# Returns {0, 0} when allowed, or {index of the first empty bucket, 1 if this is the first
# refusal of that bucket within the marker TTL else 0}.
_SCRIPT = """
local n = #KEYS / 2
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local levels = {}
for i = 1, n do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'v', 't')
  local level = tonumber(state[1])
  local stamp = tonumber(state[2])
  if level == nil or stamp == nil then
    level = capacity
  else
    level = math.min(capacity, level + math.max(0, now - stamp) * rate)
  end
  if level < 1 then
    local first = redis.call('SET', KEYS[n + i], '1', 'NX', 'PX', ARGV[2 * n + 1])
    if first then return {i, 1} end
    return {i, 0}
  end
  levels[i] = level
end
for i = 1, n do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'v', tostring(levels[i] - 1), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(capacity / rate) + 1000)
end
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: ``per_minute`` sustained, ``burst`` at once.

    Attributes:
        per_minute: Tokens added per minute.
        burst: Bucket capacity (requests allowed back to back).
    """

    per_minute: int
    burst: int

    @classmethod
    def per_minute_with_burst(cls, per_minute: int) -> Limit:
        """A limit whose burst is a quarter of a minute's worth (at least 5)."""
        return cls(per_minute=per_minute, burst=max(5, per_minute // 4))


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check.

    Attributes:
        allowed: Whether the request may proceed (also when Redis was unreachable).
        bucket: The name of the bucket that refused, if any.
        first_refusal: Whether this is that bucket's first refusal in a while (worth
            recording; later ones are not, so a flood cannot flood the ledger too).
        degraded: Redis did not answer; the request was let through unchecked.
    """

    allowed: bool
    bucket: str | None = None
    first_refusal: bool = False
    degraded: bool = False


class RateLimiter:
    """Checks and charges several named buckets atomically."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "tv2dydx:rl",
        timeout: float = 0.25,
        refusal_memory_ms: int = 60_000,
    ) -> None:
        self._redis = redis
        self._script: Any = redis.register_script(_SCRIPT)
        self._prefix = prefix
        self._timeout = timeout
        self._refusal_memory_ms = refusal_memory_ms
        self._log = get_logger(__name__)

    async def check(self, buckets: Sequence[tuple[str, str, Limit]]) -> Decision:
        """Take one token from every bucket, or from none.

        Args:
            buckets: ``(name, key, limit)`` triples. ``key`` must hold no secret (hash
                tokens before using them here).

        Returns:
            The decision; Redis failures (and answers slower than the timeout) allow.
        """
        keys = [f"{self._prefix}:{name}:{key}" for name, key, _ in buckets]
        keys += [f"{key}:refused" for key in keys]
        args: list[str | int | float] = []
        for _, _, limit in buckets:
            args += [limit.burst, limit.per_minute / 60_000]
        args.append(self._refusal_memory_ms)
        try:
            async with asyncio.timeout(self._timeout):
                index, first = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._log.warning("rate_limit_unavailable", error=type(exc).__name__)
            return Decision(allowed=True, degraded=True)
        if int(index) == 0:
            return Decision(allowed=True)
        return Decision(allowed=False, bucket=buckets[int(index) - 1][0], first_refusal=bool(first))
