"""What a worker holds is what it may act on: leases a claim no longer vouches for are not
``held`` (the trailing service follows ``held``, so it stops before another worker can take
the subaccounts over)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from core.exchange.stream import SubaccountRef
from core.services.monitor.lease import SubaccountLeases

REFS = frozenset(SubaccountRef(f"dydx1owner{n}", 0) for n in range(3))


async def test_held_is_empty_once_the_last_claim_is_nearly_a_lease_lifetime_old(
    redis: Redis,
) -> None:
    leases = SubaccountLeases(redis, ttl=1.0, prefix="test:held")
    assert leases.held == frozenset()  # nothing claimed yet
    assert await leases.claim(REFS) == REFS
    assert leases.held == REFS
    await asyncio.sleep(0.85)  # past 80 % of the lease's life without a renewal
    assert leases.held == frozenset(), "a lease that may have expired is not held"
    await leases.release_all()
    assert leases.held == frozenset()
