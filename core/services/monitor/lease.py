"""Redis leases on watched subaccounts: each one is watched by exactly one worker.

A lease is a key ``<prefix>:lease:<owner>/<number>`` holding the worker's token, set with
``SET NX PX`` and renewed (only by its holder) at a third of its life. A worker that dies
stops renewing: its leases expire and the others take them at their next claim, so a dead
holder's subaccounts are watched again within ``ttl`` plus one claim interval.

Workers also keep a heartbeat in a sorted set, so each takes only its fair share
(``ceil(wanted / workers)``) and hands back the excess when another worker joins.

A worker that cannot reach Redis keeps what it held only until its leases would have
expired (minus a margin), then drops everything: by the time another worker can take a
subaccount over, this one has stopped watching it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Collection

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.exchange.stream import SubaccountRef
from core.runtime.logs import get_logger

DEFAULT_PREFIX = "tv2dydx:monitor"

# KEYS: lease keys. ARGV: holder token, ttl (ms), how many new leases may be taken, then one
# mode per key: "k" keep (renew if held, take if free and room is left) or "r" release.
# Returns the 1-based indexes of the keys held afterwards.
_CLAIM_SCRIPT = """
local holder, ttl, room = ARGV[1], ARGV[2], tonumber(ARGV[3])
local held = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if ARGV[3 + i] == 'r' then
    if current == holder then redis.call('DEL', key) end
  elseif current == holder then
    redis.call('PEXPIRE', key, ttl)
    held[#held + 1] = i
  elseif not current and room > 0 then
    if redis.call('SET', key, holder, 'NX', 'PX', ttl) then
      room = room - 1
      held[#held + 1] = i
    end
  end
end
return held
"""


class SubaccountLeases:
    """This worker's leases on subaccounts.

    Args:
        redis: The Redis client.
        ttl: Lease lifetime in seconds; claim at least every ``ttl / 3``.
        prefix: Key prefix shared by every worker of the deployment.
        holder: This worker's token (random by default).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        ttl: float,
        prefix: str = DEFAULT_PREFIX,
        holder: str | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the lease lifetime must be positive")
        self._redis = redis
        self._ttl_ms = max(1, int(ttl * 1000))
        self._prefix = prefix
        self.holder = holder or uuid.uuid4().hex
        self._held: set[SubaccountRef] = set()
        self._valid_until = 0.0
        self._script = redis.register_script(_CLAIM_SCRIPT)
        self._log = get_logger(__name__, holder=self.holder[:8])

    @property
    def held(self) -> frozenset[SubaccountRef]:
        """The subaccounts this worker holds as of the last claim; none once that claim is
        too old to be sure its leases still stand (a claim stuck on Redis)."""
        if time.monotonic() >= self._valid_until:
            return frozenset()
        return frozenset(self._held)

    def _key(self, ref: SubaccountRef) -> str:
        return f"{self._prefix}:lease:{ref.key}"

    async def _workers(self, now_ms: int) -> int:
        """Register this worker's heartbeat; how many workers are alive."""
        members = f"{self._prefix}:workers"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(members, "-inf", now_ms)
            pipe.zadd(members, {self.holder: now_ms + self._ttl_ms})
            pipe.pexpire(members, self._ttl_ms * 4)
            pipe.zcard(members)
            *_, count = await pipe.execute()
        return max(1, int(count))

    async def claim(self, wanted: Collection[SubaccountRef]) -> frozenset[SubaccountRef]:
        """Renew held leases still wanted, take free ones up to the fair share, release the
        rest.

        Returns:
            The subaccounts this worker holds now (empty once Redis has been unreachable
            for nearly a lease lifetime).
        """
        started = time.monotonic()
        wanted_set = set(wanted)
        try:
            workers = await self._workers(int(time.time() * 1000))
            share = math.ceil(len(wanted_set) / workers)
            keep = sorted(self._held & wanted_set)
            release = sorted(self._held - wanted_set)
            if len(keep) > share:  # another worker joined: hand back the excess
                keep, extra = keep[:share], keep[share:]
                release += extra
            candidates = sorted(wanted_set - self._held)
            refs = keep + candidates + release  # renewals first: they always get room
            modes = ["k"] * (len(keep) + len(candidates)) + ["r"] * len(release)
            room = max(0, share - len(keep))
            if refs:
                indexes = await self._script(
                    keys=[self._key(r) for r in refs],
                    args=[self.holder, self._ttl_ms, room, *modes],
                )
                held = {refs[int(i) - 1] for i in indexes}
            else:
                held = set()
        except RedisError as exc:
            if time.monotonic() >= self._valid_until:
                if self._held:
                    self._log.warning("monitor_leases_dropped", error=str(exc))
                self._held = set()
            else:
                self._log.warning("monitor_lease_renewal_failed", error=str(exc))
            return frozenset(self._held)
        lost = set(keep) - held
        if lost:
            self._log.warning("monitor_leases_lost", count=len(lost))
        self._held = held
        # Keep a margin: this worker must stop before another may take over.
        self._valid_until = started + self._ttl_ms / 1000 * 0.8
        return frozenset(held)

    async def release_all(self) -> None:
        """Give every lease back (on a clean shutdown, so another worker takes over at once)."""
        refs = sorted(self._held)
        self._held = set()
        try:
            if refs:
                await self._script(
                    keys=[self._key(r) for r in refs],
                    args=[self.holder, self._ttl_ms, 0, *(["r"] * len(refs))],
                )
            await self._redis.zrem(f"{self._prefix}:workers", self.holder)
        except RedisError as exc:
            self._log.warning("monitor_lease_release_failed", error=str(exc))
