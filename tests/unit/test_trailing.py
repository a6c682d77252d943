"""Trailing stop and breakeven evaluation: the index, coalescing, rounding and the budget."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.states import PositionSide
from core.exchange.grid import GridError, PriceOffTickError, check_price, round_price_to_tick
from core.services.protection.trailing import (
    DYDX_STATEFUL_ORDER_LIMITS,
    BlockRateLimit,
    MoveReason,
    StatefulOrderBudget,
    StopMove,
    StopSpec,
    StopTracker,
)

D = Decimal
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
OWNER = "dydx1owner"


STEP = D("0.001")


@dataclass(frozen=True)
class Grid:
    tick_size: Decimal
    step_size: Decimal = STEP


def unlimited() -> StatefulOrderBudget:
    return StatefulOrderBudget([BlockRateLimit(1, 10**9)])


def tracker(tick: str = "0.01", *, budget: StatefulOrderBudget | None = None) -> StopTracker:
    t = StopTracker(min_step=D("0.001"), budget=budget or unlimited())
    t.set_market("BTC-USD", Grid(D(tick)))
    t.set_market("ETH-USD", Grid(D(tick)))
    return t


def spec(bracket_id: int = 1, side: PositionSide = LONG, **kw: object) -> StopSpec:
    fields: dict[str, object] = {
        "owner": OWNER,
        "market": "BTC-USD",
        "entry_price": D(100),
        "stop": D(99) if side is LONG else D(101),
    }
    fields.update(kw)
    return StopSpec(bracket_id=bracket_id, side=side, **fields)  # type: ignore[arg-type]


def take_and_confirm(t: StopTracker, height: int, owner: str = OWNER) -> list[StopMove]:
    moves = t.take_due(owner, height)
    for move in moves:
        assert t.confirm(move)
    return moves


def stop_of(t: StopTracker, bracket_id: int = 1) -> Decimal | None:
    snap = t.snapshot(bracket_id)
    assert snap is not None
    return snap.stop


# -- trailing -----------------------------------------------------------------------------


def test_long_trailing_moves_only_after_a_minimum_step_and_rounds_down() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    # next step due at (99 + 0.099) / 0.99 = 100.1
    assert t.on_oracle("BTC-USD", D("100.05"), 10) == []
    [move] = t.on_oracle("BTC-USD", D("100.2"), 11)
    assert (move.to_trigger, move.reason, move.oracle) == (D("99.19"), MoveReason.TRAIL, D("100.2"))
    assert move.from_trigger == D(99)
    [taken] = take_and_confirm(t, 11)
    assert taken.seq == move.seq
    assert stop_of(t) == D("99.19")
    snap = t.snapshot(1)
    assert snap is not None
    assert snap.anchor == D("100.2")


def test_short_trailing_mirrors_and_rounds_up() -> None:
    t = tracker()
    t.add(spec(side=SHORT, trail_pct=D(1)))
    assert t.on_oracle("BTC-USD", D("99.95"), 1) == []
    [move] = t.on_oracle("BTC-USD", D("99.8"), 2)
    assert move.to_trigger == D("100.80")  # 99.8 × 1.01 = 100.798, rounded up
    take_and_confirm(t, 2)
    assert t.on_oracle("BTC-USD", D("100.5"), 3) == []  # never backwards
    assert stop_of(t) == D("100.80")


def test_a_bracket_without_a_stop_gets_its_trail_at_the_next_tick() -> None:
    t = tracker()
    t.add(spec(stop=None, trail_pct=D(2)))
    [move] = t.on_oracle("BTC-USD", D(100), 1)
    assert (move.from_trigger, move.to_trigger) == (None, D(98))


def test_tick_rounding_keeps_every_target_on_the_grid() -> None:
    t = tracker("0.5")
    t.add(spec(trail_pct=D("1.3")))
    t.add(spec(2, SHORT, trail_pct=D("1.3")))
    [long_move] = t.on_oracle("BTC-USD", D("103.7"), 1)
    assert long_move.to_trigger == D("102.0")  # 102.3519 down
    [short_move] = t.on_oracle("BTC-USD", D("96.1"), 2)
    assert short_move.to_trigger == D("97.5")  # 97.3493 up
    for move in (long_move, short_move):
        check_price(move.to_trigger, Grid(D("0.5")))


# -- breakeven ----------------------------------------------------------------------------


def test_long_breakeven_moves_to_entry_plus_fees_once() -> None:
    t = tracker()
    t.add(spec(be_trigger_pct=D(1), fee_rate=D("0.0005")))
    assert t.on_oracle("BTC-USD", D("100.99"), 1) == []
    [move] = t.on_oracle("BTC-USD", D(101), 2)
    # 100 × 1.0005 / 0.9995 = 100.10005…, rounded up so closing there loses nothing
    assert (move.to_trigger, move.reason) == (D("100.11"), MoveReason.BREAKEVEN)
    take_and_confirm(t, 2)
    snap = t.snapshot(1)
    assert snap is not None
    assert snap.breakeven_done
    assert t.on_oracle("BTC-USD", D(120), 3) == []
    assert t.on_oracle("BTC-USD", D(90), 4) == []
    assert t.on_oracle("BTC-USD", D(125), 5) == []
    assert stop_of(t) == D("100.11")


def test_short_breakeven_with_fees_rounds_towards_profit() -> None:
    t = tracker()
    t.add(spec(side=SHORT, be_trigger_pct=D(1), fee_rate=D("0.0005")))
    assert t.on_oracle("BTC-USD", D("99.01"), 1) == []
    [move] = t.on_oracle("BTC-USD", D(99), 2)
    assert move.to_trigger == D("99.90")  # 100 × 0.9995 / 1.0005 = 99.90005…, down


def test_breakeven_and_trailing_the_tighter_wins() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(5), be_trigger_pct=D(1)))
    [move] = t.on_oracle("BTC-USD", D(102), 1)
    assert (move.to_trigger, move.reason) == (D(100), MoveReason.BREAKEVEN)
    take_and_confirm(t, 1)
    [move] = t.on_oracle("BTC-USD", D(110), 2)
    assert (move.to_trigger, move.reason) == (D("104.50"), MoveReason.TRAIL)


def test_a_breakeven_trigger_within_the_fees_is_refused() -> None:
    t = tracker()
    with pytest.raises(ValueError, match="within the fees"):
        t.add(spec(be_trigger_pct=D("0.1"), fee_rate=D("0.001")))


def test_a_breakeven_the_oracle_fell_back_through_is_held_until_it_is_back() -> None:
    t = tracker()
    t.add(spec(be_trigger_pct=D(1)))
    [move] = t.on_oracle("BTC-USD", D(101), 1)
    assert move.to_trigger == D(100)
    t.on_oracle("BTC-USD", D("99.5"), 2)
    assert t.take_due(OWNER, 2) == []  # a stop above the oracle would trigger at once
    assert OWNER in t.waiting_owners()
    t.on_oracle("BTC-USD", D("100.5"), 3)
    [taken] = take_and_confirm(t, 3)
    assert taken.to_trigger == D(100)


# -- coalescing, order of moves, confirm / reject -----------------------------------------


def test_ticks_coalesce_into_one_pending_move_with_the_latest_target() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    targets = [
        m.to_trigger for p in ("100.5", "101", "102") for m in t.on_oracle("BTC-USD", D(p), 1)
    ]
    assert targets == [D("99.49"), D("99.99"), D("100.98")]
    assert t.on_oracle("BTC-USD", D("101.5"), 2) == []  # down again: nothing new
    [move] = t.take_due(OWNER, 2)
    assert (move.to_trigger, move.from_trigger) == (D("100.98"), D(99))
    assert t.take_due(OWNER, 3) == []  # nothing else for that bracket


def test_one_move_in_flight_per_bracket_and_a_newer_one_waits() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)
    [first] = t.take_due(OWNER, 1)
    [newer] = t.on_oracle("BTC-USD", D(103), 2)
    assert t.take_due(OWNER, 3) == []  # the first is still in flight
    assert t.confirm(first)
    [second] = t.take_due(OWNER, 4)
    assert second.seq == newer.seq
    assert (second.from_trigger, second.to_trigger) == (first.to_trigger, D("101.97"))


def test_a_confirmed_move_drops_a_pending_one_that_is_no_tighter() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)
    [first] = t.take_due(OWNER, 1)
    assert t.confirm(first)
    assert not t.confirm(first)  # stale
    assert t.take_due(OWNER, 2) == []


def test_a_rejected_move_is_retried_from_its_height_and_not_refunded() -> None:
    budget = StatefulOrderBudget()
    t = tracker(budget=budget)
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)
    [move] = t.take_due(OWNER, 1)
    assert t.reject(move, retry_from=5)
    assert not t.reject(move)
    assert budget.available(OWNER, 1) == 1
    assert t.take_due(OWNER, 4) == []
    [again] = t.take_due(OWNER, 5)
    assert again.to_trigger == move.to_trigger
    assert stop_of(t) == D(99)


def test_a_newer_target_replaces_a_rejected_one() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)
    [move] = t.take_due(OWNER, 1)
    t.on_oracle("BTC-USD", D(104), 2)
    t.reject(move)
    [again] = t.take_due(OWNER, 3)
    assert again.to_trigger == D("102.96")


def test_remove_and_update() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)
    assert t.remove(1)
    assert not t.remove(1)
    assert t.take_due(OWNER, 1) == []
    assert t.on_oracle("BTC-USD", D(110), 2) == []
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 3)
    t.update(spec(trail_pct=D(2), stop=D(98)))  # pending dropped, anchor 101 kept
    snap = t.snapshot(1)
    assert snap is not None
    assert (snap.anchor, snap.stop, snap.trail_pct) == (D(101), D(98), D(2))
    assert t.take_due(OWNER, 3) == []
    [move] = t.on_oracle("BTC-USD", D(101), 4)
    assert move.to_trigger == D("98.98")
    with pytest.raises(ValueError, match="not tracked"):
        t.update(spec(7, trail_pct=D(1)))


def test_a_restored_snapshot_catches_up_with_its_anchor() -> None:
    t = tracker()
    t.add(spec(trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(110), 1)
    snap = t.snapshot(1)
    assert snap is not None
    assert snap.stop == D(99)
    fresh = tracker()
    fresh.add(snap)
    # below the next trail step from 99, but the stored anchor (110) is past it already
    [move] = fresh.on_oracle("BTC-USD", D("100.05"), 2)
    assert move.to_trigger == D("108.90")
    assert fresh.take_due(OWNER, 2) == []  # held: above the oracle it would trigger at once
    assert fresh.on_oracle("BTC-USD", D(109), 3) == []
    [taken] = fresh.take_due(OWNER, 3)
    assert taken.to_trigger == D("108.90")


# -- budget -------------------------------------------------------------------------------


def pending_brackets(t: StopTracker, count: int, owner: str = OWNER) -> None:
    for i in range(count):
        t.add(spec(1000 + i, owner=owner, trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)


def test_dydx_limits_are_two_per_block_and_twenty_per_hundred_blocks() -> None:
    assert (BlockRateLimit(1, 2), BlockRateLimit(100, 20)) == DYDX_STATEFUL_ORDER_LIMITS


def test_the_budget_allows_two_moves_per_block() -> None:
    t = tracker(budget=StatefulOrderBudget())
    pending_brackets(t, 5)
    pending_brackets(t, 0, owner="dydx1other")
    assert len(t.take_due(OWNER, 10)) == 2
    assert t.take_due(OWNER, 10) == []
    assert len(t.take_due(OWNER, 11)) == 2
    assert len(t.take_due(OWNER, 12)) == 1
    assert t.waiting_owners() == frozenset()


def test_the_budget_allows_twenty_moves_per_hundred_blocks() -> None:
    t = tracker(budget=StatefulOrderBudget())
    pending_brackets(t, 30)
    taken = [len(t.take_due(OWNER, h)) for h in range(100, 115)]
    assert taken == [2] * 10 + [0] * 5
    assert t.take_due(OWNER, 199) == []
    assert len(t.take_due(OWNER, 200)) == 2  # the moves of block 100 left the window
    assert len(t.take_due(OWNER, 201)) == 2


def test_the_budget_is_per_owner_and_counts_other_stateful_orders() -> None:
    t = tracker(budget=StatefulOrderBudget())
    for i, owner in enumerate(("dydx1a", "dydx1b")):
        t.add(spec(i, owner=owner, trail_pct=D(1)))
    t.on_oracle("BTC-USD", D(101), 1)
    t.record_stateful_order("dydx1a", 5)
    t.record_stateful_order("dydx1a", 5)
    assert t.take_due("dydx1a", 5) == []
    assert len(t.take_due("dydx1b", 5)) == 1
    assert len(t.take_due("dydx1a", 6)) == 1


def test_the_most_urgent_stop_goes_first() -> None:
    t = tracker(budget=StatefulOrderBudget([BlockRateLimit(1, 2)]))
    t.add(spec(1, trail_pct=D(1), stop=D(99)))  # target 99.99: 1.0 % behind
    t.add(spec(2, trail_pct=D(1), stop=D(95)))  # 5.0 % behind
    t.add(spec(3, trail_pct=D(1), stop=D(90)))  # 10 % behind
    t.add(spec(4, trail_pct=D(1), stop=D("99.5")))
    t.on_oracle("BTC-USD", D(101), 1)
    assert [m.bracket_id for m in t.take_due(OWNER, 1)] == [3, 2]
    assert [m.bracket_id for m in t.take_due(OWNER, 2)] == [1, 4]
    t.add(spec(5, trail_pct=D(1), stop=None))
    t.add(spec(6, trail_pct=D(1), stop=D(50)))
    t.on_oracle("BTC-USD", D(101), 3)
    assert [m.bracket_id for m in t.take_due(OWNER, 3)] == [5, 6]  # no stop at all first


def test_budget_window_arithmetic() -> None:
    budget = StatefulOrderBudget([BlockRateLimit(1, 2), BlockRateLimit(3, 3)])
    budget.spend("o", 10)
    budget.spend("o", 10)
    assert budget.available("o", 10) == 0
    assert budget.available("o", 11) == 1
    budget.spend("o", 11)
    assert budget.available("o", 12) == 0
    assert budget.available("o", 13) == 2
    assert budget.available("o", 14) == 2


# -- the index touches only crossed brackets ----------------------------------------------


def test_only_crossed_brackets_move_across_markets_and_sides() -> None:
    t = tracker()
    for i in range(50):
        t.add(spec(i, trail_pct=D(1) + D(i) / 10))
        t.add(spec(100 + i, SHORT, trail_pct=D(1) + D(i) / 10))
        t.add(spec(200 + i, market="ETH-USD", trail_pct=D(1)))
        t.add(spec(300 + i, stop=D(90)))  # fixed: never indexed
    moved = {m.bracket_id for m in t.on_oracle("BTC-USD", D(102), 1)}
    # a long with trail x moves when 102 × (1 − x) rounded beats 99 by a step
    expected = {
        i
        for i in range(50)
        if round_price_to_tick(D(102) * (1 - (D(1) + D(i) / 10) / 100), Grid(D("0.01")), up=False)
        >= D(99) + D("0.099")
    }
    assert moved == expected
    assert expected
    assert {m.bracket_id for m in t.on_oracle("BTC-USD", D(97), 2)} == set(range(100, 150)) - {
        100 + i for i in range(50) if D(97) * (1 + (D(1) + D(i) / 10) / 100) > D("100.899")
    }


# -- validation ---------------------------------------------------------------------------


def test_input_validation() -> None:
    t = tracker()
    with pytest.raises(TypeError):
        t.on_oracle("BTC-USD", 100.0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        t.on_oracle("BTC-USD", D(0), 1)
    with pytest.raises(GridError):
        t.on_oracle("BTC-USD", D("NaN"), 1)
    with pytest.raises(ValueError, match="height"):
        t.on_oracle("BTC-USD", D(1), -1)
    with pytest.raises(ValueError, match="unknown market"):
        t.add(spec(market="DOGE-USD"))
    with pytest.raises(PriceOffTickError):
        t.add(spec(stop=D("99.005")))
    with pytest.raises(ValueError, match="trail_pct"):
        spec(trail_pct=D(100))
    with pytest.raises(ValueError, match="be_trigger_pct"):
        spec(side=SHORT, be_trigger_pct=D(100))
    with pytest.raises(ValueError, match="fee_rate"):
        spec(fee_rate=D(1))
    with pytest.raises(TypeError):
        spec(entry_price=100)
    with pytest.raises(ValueError, match="min_step"):
        StopTracker(min_step=D(1))
    with pytest.raises(ValueError, match="rate limits"):
        StatefulOrderBudget([])
    t.add(spec(trail_pct=D(1)))
    with pytest.raises(ValueError, match="already"):
        t.add(spec(trail_pct=D(1)))
    assert t.on_oracle("SOL-USD", D(1), 1) == []  # an unknown market has nothing to move


# -- properties ---------------------------------------------------------------------------

# a walk of the oracle: each tick moves it by up to ±3 % (in cents, kept positive)
STEPS = st.lists(st.integers(min_value=-300, max_value=300), min_size=1, max_size=60)


def walk(steps: list[int]) -> list[Decimal]:
    prices, cents = [], 10_000
    for bp in steps:
        cents = max(100, cents + cents * bp // 10_000)
        prices.append(D(cents) / 100)
    return prices


TICK = D("0.01")


@settings(max_examples=150, deadline=None)
@given(
    side=st.sampled_from([LONG, SHORT]),
    trail=st.integers(min_value=5, max_value=1_000).map(lambda bp: D(bp) / 100),
    be=st.one_of(st.none(), st.integers(min_value=50, max_value=1_000).map(lambda bp: D(bp) / 100)),
    ticks=STEPS.map(walk),
    confirm_every=st.integers(min_value=1, max_value=5),
)
def test_a_stop_only_tightens_and_never_passes_the_trail(
    side: PositionSide,
    trail: Decimal,
    be: Decimal | None,
    ticks: list[Decimal],
    confirm_every: int,
) -> None:
    long = side is LONG
    t = tracker()
    entry = D(100)
    t.add(spec(side=side, trail_pct=trail, be_trigger_pct=be, fee_rate=D("0.0005"), stop=None))
    best = entry
    even = entry * D("1.0005") / D("0.9995") if long else entry * D("0.9995") / D("1.0005")
    be_stop = round_price_to_tick(even, Grid(TICK), up=long)
    last_stop: Decimal | None = None
    for height, price in enumerate(ticks, start=1):
        best = max(best, price) if long else min(best, price)
        t.on_oracle("BTC-USD", price, height)
        if height % confirm_every == 0 or height == len(ticks):
            for move in take_and_confirm(t, height):
                # placed only on the safe side of the oracle
                assert move.to_trigger < price if long else move.to_trigger > price
        stop = stop_of(t)
        if stop is None:
            continue
        check_price(stop, Grid(TICK))
        if last_stop is not None:
            assert stop >= last_stop if long else stop <= last_stop  # never backwards
        last_stop = stop
        limit = best * (1 - trail / 100) if long else best * (1 + trail / 100)
        trail_bound = round_price_to_tick(limit, Grid(TICK), up=not long)
        be_applies = be is not None and (
            best >= entry * (1 + be / 100) if long else best <= entry * (1 - be / 100)
        )
        # never tighter than the best oracle allows (the trail, or breakeven once reached)
        bound = max(trail_bound, be_stop) if long else min(trail_bound, be_stop)
        allowed = bound if be_applies else trail_bound
        assert stop <= allowed if long else stop >= allowed
    # unlimited budget, everything confirmed, nothing held: the stop lags by less than a step
    final = stop_of(t)
    if final is not None and OWNER not in t.waiting_owners():
        exact = best * (1 - trail / 100) if long else best * (1 + trail / 100)
        step = max(TICK, final * D("0.001"))
        assert (exact - final < step) if long else (final - exact < step)


@settings(max_examples=60, deadline=None)
@given(
    heights=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=150),
    brackets=st.integers(min_value=1, max_value=40),
)
def test_the_budget_is_never_exceeded(heights: list[int], brackets: int) -> None:
    t = tracker(budget=StatefulOrderBudget())
    for i in range(brackets):
        t.add(spec(i, trail_pct=D(1)))
    taken_at: list[int] = []
    height, price = 1, D(100)
    for gap in heights:
        height += gap
        price += D("0.5")
        t.on_oracle("BTC-USD", price, height)
        for move in t.take_due(OWNER, height):
            taken_at.append(height)
            t.confirm(move)
    for h in set(taken_at):
        assert taken_at.count(h) <= 2
        assert sum(h - 100 < other <= h for other in taken_at) <= 20
