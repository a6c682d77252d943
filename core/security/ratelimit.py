"""Token-bucket rate limits in Redis: several buckets checked and charged in one round trip.

A Lua script reads every bucket, refills it from the elapsed time (Redis' own clock, so
several web processes agree), and charges all of them only when all have a token: a
request refused by its per-token bucket does not also drain the shared per-IP bucket.
Concurrent checks share one script call (:class:`core.runtime.batching.MicroBatcher`).

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

from core.runtime.batching import MicroBatcher
from core.runtime.logs import get_logger

# Most checks sent to Redis in one script call.
MAX_BATCH = 100

# Several independent checks in one call (the checks of concurrent requests, coalesced),
# each atomic and applied in order, so two checks of one bucket see each other's charge.
# KEYS: per check, its n bucket keys then its n "denied" marker keys.
# ARGV: the marker TTL; then per check, n, then per bucket its capacity and its refill rate
# in tokens per millisecond.
# Returns, per check, {0, 0, 0} when allowed, or {index of the first empty bucket, 1 if this
# is the first refusal of that bucket within the marker TTL else 0, milliseconds until that
# bucket holds a token again}.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = ARGV[1]
local out = {}
local k = 0
local a = 1
while a < #ARGV do
  local n = tonumber(ARGV[a + 1])
  local levels = {}
  local refused = 0
  local first = 0
  local wait = 0
  for i = 1, n do
    local capacity = tonumber(ARGV[a + 2 * i])
    local rate = tonumber(ARGV[a + 2 * i + 1])
    local state = redis.call('HMGET', KEYS[k + i], 'v', 't')
    local level = tonumber(state[1])
    local stamp = tonumber(state[2])
    if level == nil or stamp == nil then
      level = capacity
    else
      level = math.min(capacity, level + math.max(0, now - stamp) * rate)
    end
    if level < 1 then
      refused = i
      wait = math.ceil((1 - level) / rate)
      if redis.call('SET', KEYS[k + n + i], '1', 'NX', 'PX', ttl) then first = 1 end
      break
    end
    levels[i] = level
  end
  if refused == 0 then
    for i = 1, n do
      local capacity = tonumber(ARGV[a + 2 * i])
      local rate = tonumber(ARGV[a + 2 * i + 1])
      redis.call('HSET', KEYS[k + i], 'v', tostring(levels[i] - 1), 't', tostring(now))
      redis.call('PEXPIRE', KEYS[k + i], math.ceil(capacity / rate) + 1000)
    end
  end
  out[#out + 1] = refused
  out[#out + 1] = first
  out[#out + 1] = wait
  k = k + 2 * n
  a = a + 1 + 2 * n
end
return out
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
        retry_after: Whole seconds until the refusing bucket holds a token again (at least
            1; the ``Retry-After`` of a 429), 0 when allowed.
    """

    allowed: bool
    bucket: str | None = None
    first_refusal: bool = False
    degraded: bool = False
    retry_after: int = 0


class RateLimiter:
    """Checks and charges several named buckets atomically.

    Checks made concurrently travel to Redis together (one script call per batch), each
    still atomic and answered on its own.
    """

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
        self._batcher: MicroBatcher[Sequence[tuple[str, str, Limit]], tuple[int, int, int]] = (
            MicroBatcher(self._check_many, max_batch=MAX_BATCH)
        )
        self._log = get_logger(__name__)

    async def check(self, buckets: Sequence[tuple[str, str, Limit]]) -> Decision:
        """Take one token from every bucket, or from none.

        Args:
            buckets: ``(name, key, limit)`` triples. ``key`` must hold no secret (hash
                tokens before using them here).

        Returns:
            The decision; Redis failures (and answers slower than the timeout) allow.
        """
        try:
            async with asyncio.timeout(self._timeout):
                index, first, wait_ms = await self._batcher.submit(buckets)
        except (RedisError, OSError, TimeoutError) as exc:
            self._log.warning("rate_limit_unavailable", error=type(exc).__name__)
            return Decision(allowed=True, degraded=True)
        if index == 0:
            return Decision(allowed=True)
        return Decision(
            allowed=False,
            bucket=buckets[index - 1][0],
            first_refusal=bool(first),
            retry_after=max(1, -(-wait_ms // 1000)),
        )

    async def _check_many(
        self, checks: Sequence[Sequence[tuple[str, str, Limit]]]
    ) -> list[tuple[int, int, int]]:
        keys: list[str] = []
        args: list[str | int | float] = [self._refusal_memory_ms]
        for buckets in checks:
            bucket_keys = [f"{self._prefix}:{name}:{key}" for name, key, _ in buckets]
            keys += bucket_keys
            keys += [f"{key}:refused" for key in bucket_keys]
            args.append(len(buckets))
            for _, _, limit in buckets:
                args += [limit.burst, limit.per_minute / 60_000]
        flat = await self._script(keys=keys, args=args)
        return [(int(flat[i]), int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]
