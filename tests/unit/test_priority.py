"""The placing-first gate: bookkeeping waits while alerts are placed, never for ever."""

from __future__ import annotations

import asyncio

from core.services.priority import PlacementGate


async def test_bookkeeping_goes_on_at_once_when_nothing_is_placed() -> None:
    gate = PlacementGate(max_yield=30.0)
    await asyncio.wait_for(gate.yield_to_placing(), 1.0)


async def test_bookkeeping_waits_until_the_last_placement_is_done() -> None:
    gate = PlacementGate(max_yield=30.0)
    first, second = gate.place(), gate.place()
    waiting = asyncio.create_task(gate.yield_to_placing())
    first.done()
    first.done()  # idempotent: the second placement still counts
    await asyncio.sleep(0)
    assert not waiting.done()
    assert gate.placing == 1
    second.done()
    await asyncio.wait_for(waiting, 1.0)
    assert gate.placing == 0


async def test_a_steady_stream_of_placements_delays_bookkeeping_only_up_to_the_cap() -> None:
    gate = PlacementGate(max_yield=0.05)
    never_done = gate.place()
    await asyncio.wait_for(gate.yield_to_placing(), 5.0)  # returns after the cap
    assert gate.placing == 1
    never_done.done()


async def test_a_claimed_job_counts_until_it_takes_its_placement_or_ends() -> None:
    gate = PlacementGate()
    gate.claimed("alert:1")
    gate.claimed("alert:1")  # claimed twice (a re-poll): counted once
    gate.claimed("alert:2")
    assert gate.placing == 2
    taken = gate.take("alert:1")  # the job runs: its placement is the claim's
    assert gate.placing == 2
    gate.release("alert:1")  # the job ends: already taken, nothing to release twice
    assert gate.placing == 2
    taken.done()
    gate.release("alert:2")  # ended before it started (expired, aborted)
    assert gate.placing == 0
    with gate.take("alert:3"):  # never claimed (a test, another worker kind): its own
        assert gate.placing == 1
    assert gate.placing == 0
