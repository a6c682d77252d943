"""Trailing stops with two worker processes: each bracket is moved by exactly one of them (the
one whose monitor holds its subaccount's lease), so the owner's stateful-order budget lives in
one process; when that worker is killed, the other takes the lease over once it expires and
keeps trailing from the stop and anchor in the ledger. Real ``tv2dydx worker`` processes, the
web app, PostgreSQL, Redis, the dYdX double with the real dydx-v4-client, and the Telegram
double.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core.db.models import Bracket
from core.domain.states import BracketState
from core.exchange.orders import OrderKind
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from core.exchange.stream import SubaccountRef
from core.runtime.config import Settings
from core.services.monitor.lease import DEFAULT_PREFIX
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.e2e.test_cli import bare_env
from tests.e2e.test_execution_faults import WorkerProcess
from tests.e2e.test_protection import brackets_of, protected_entry
from tests.e2e.test_protection_faults import _output
from tests.protection_checks import assert_invariant, until, venue
from tests.trading_stack import Maker, Trader, add_trader

#: Short leases, so the takeover is quick to watch (production: 15 s).
LEASE_SECONDS = 3
#: The dYdX double's markets by CLOB pair, and their subticks per USD.
PAIRS = {0: "BTC-USD", 1: "ETH-USD"}
SUBTICKS_PER_USD = {"BTC-USD": Decimal(100_000), "ETH-USD": Decimal(1_000_000)}
#: The chain's stateful-order limit per owner and block.
PER_BLOCK = 2


@pytest.fixture
def two_workers(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    env = bare_env(
        {**base_env, **telegram_env, **dydx_env}, MONITOR_LEASE_SECONDS=str(LEASE_SECONDS)
    )
    pair = (WorkerProcess(env), WorkerProcess(env))
    yield pair
    for process in pair:
        process.stop()


def stop_places(dydx: DydxDouble, *, accepted: bool = True) -> list[tuple[str, Decimal, int]]:
    """(market, trigger, height) of every stop-loss placement the node accepted (or, with
    ``accepted=False``, refused)."""
    return [
        (
            PAIRS[message.order.order_id.clob_pair_id],
            Decimal(message.order.conditional_order_trigger_subticks)
            / SUBTICKS_PER_USD[PAIRS[message.order.order_id.clob_pair_id]],
            record.height,
        )
        for record in list(dydx.node.broadcasts)
        if record.processed and record.accepted is accepted
        for message in record.messages
        if type(message).__name__ == "MsgPlaceOrder"
        and message.order.conditional_order_trigger_subticks
        and message.order.condition_type == 1  # CONDITION_TYPE_STOP_LOSS
    ]


async def the_brackets(maker: Maker, me: Trader) -> dict[str, Bracket]:
    return {bracket.market: bracket for bracket in await brackets_of(maker, me.user_id)}


async def resting_stops(exchange: Exchange) -> dict[str, list[Decimal]]:
    stops: dict[str, list[Decimal]] = {}
    for order in await exchange.open_orders():
        if order.kind is OrderKind.STOP:
            stops.setdefault(order.market, []).append(order.trigger_price or Decimal(0))
    return {market: sorted(triggers) for market, triggers in stops.items()}


async def stops_at(maker: Maker, me: Trader, exchange: Exchange, **want: Decimal) -> bool:
    """Whether the ledger and the venue both have exactly one stop per market, as wanted
    (``ETH_USD=Decimal(...)``)."""
    wanted = {market.replace("_", "-"): trigger for market, trigger in want.items()}
    brackets = await the_brackets(maker, me)
    stops = await resting_stops(exchange)
    return all(
        market in brackets
        and brackets[market].state is BracketState.RESTING
        and brackets[market].sl_trigger == trigger
        and stops.get(market) == [trigger]
        for market, trigger in wanted.items()
    )


def moved_by(process: WorkerProcess) -> int:
    """How many stops this worker moved (its ``trailing_stop_moved`` events)."""
    return _output(process).count('"trailing_stop_moved"')


async def logged(process: WorkerProcess, moves: int) -> None:
    """Wait until the worker has logged ``moves`` stop moves: it logs a move once the old
    stop's cancel is sent, so the chain can show the move a moment before the log does."""

    async def enough() -> bool:
        return moved_by(process) >= moves

    await until(enough, within=10)


def tracks(process: WorkerProcess) -> bool:
    """Whether this worker ever tracked a trailing bracket."""
    return '"trailing_tracking"' in _output(process)


def assert_each_stop_placed_once_within_the_block_budget(dydx: DydxDouble) -> None:
    places = stop_places(dydx)
    triggers = [(market, trigger) for market, trigger, _ in places]
    assert len(set(triggers)) == len(triggers), f"a stop was placed twice: {triggers}"
    per_block: dict[int, int] = {}
    for _, _, height in places:
        per_block[height] = per_block.get(height, 0) + 1
    assert max(per_block.values()) <= PER_BLOCK, per_block
    for market in PAIRS.values():
        mine = [trigger for m, trigger in triggers if m == market]
        assert mine == sorted(mine), f"{market}'s stop moved down: {mine}"


async def test_one_worker_trails_each_bracket_and_the_other_takes_over_when_it_dies(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    redis: Redis,
    two_workers: tuple[WorkerProcess, WorkerProcess],
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    exchange = await venue(exchanges, me)
    for process in two_workers:
        process.start()

    async def both_up() -> bool:
        return all("Starting worker" in _output(p) for p in two_workers)

    await until(both_up, within=30)
    # One owner, two positions (two advisory locks: without one keeper per owner, the two
    # workers could each move one of them in the same block, each on its own budget).
    await protected_entry(live_sessionmaker, web, me, trail_pct="1")
    await protected_entry(live_sessionmaker, web, me, market="BTC-USD", size="0.001", trail_pct="1")
    await until(
        lambda: stops_at(
            live_sessionmaker, me, exchange, ETH_USD=Decimal(2970), BTC_USD=Decimal(89100)
        ),
        within=40,
    )
    first_legs = len(stop_places(dydx_double))
    assert first_legs == 2

    # A burst on both markets: the stops follow, moved by one worker only.
    for step in range(1, 31):
        dydx_double.set_oracle_price("ETH-USD", str(3000 + 10 * step))
        dydx_double.set_oracle_price("BTC-USD", str(90000 + 300 * step))
        await asyncio.sleep(0.03)
    await until(
        lambda: stops_at(
            live_sessionmaker, me, exchange, ETH_USD=Decimal(3267), BTC_USD=Decimal(98010)
        ),
        within=60,
    )
    await assert_invariant(exchange)
    assert_each_stop_placed_once_within_the_block_budget(dydx_double)
    moves = len(stop_places(dydx_double)) - first_legs
    trackers = [p for p in two_workers if tracks(p)]
    assert len(trackers) == 1, "one worker tracks the owner's brackets"
    await logged(trackers[0], moves)
    assert [moved_by(p) for p in two_workers].count(0) == 1, "one worker moved the stops"
    (holder,) = trackers
    (other,) = [p for p in two_workers if p is not holder]
    assert moved_by(holder) == moves >= 2, "the lease holder moved every stop"

    # The holder dies; its lease stands until it expires, and nobody moves a stop meanwhile.
    ref = SubaccountRef(me.dydx.owner_address, me.dydx.subaccount_number)
    lease = f"{DEFAULT_PREFIX}:lease:{ref.key}"
    victim = await redis.get(lease)
    assert victim is not None
    placed_before = len(stop_places(dydx_double))
    holder.kill()
    killed_at = time.monotonic()
    # Below the stored anchor (3300) on ETH: no move. Past it on BTC: 100000 - 1 % = 99000.
    dydx_double.set_oracle_price("ETH-USD", "3290")
    dydx_double.set_oracle_price("BTC-USD", "100000")
    while True:
        placed = len(stop_places(dydx_double))
        if await redis.get(lease) != victim:
            break
        assert placed == placed_before, "a stop moved while the dead worker's lease stood"
        await asyncio.sleep(0.05)
    await until(
        lambda: stops_at(
            live_sessionmaker, me, exchange, ETH_USD=Decimal(3267), BTC_USD=Decimal(99000)
        ),
        within=LEASE_SECONDS + 15,
    )
    print(f"\ntrailing taken over {time.monotonic() - killed_at:.1f} s after the kill")
    assert tracks(other), "the survivor tracks the brackets now"
    await logged(other, 1)
    assert moved_by(other) == 1, "the survivor moved BTC's stop"
    assert len(stop_places(dydx_double)) == placed_before + 1  # ETH stayed at its stored stop

    # And keeps trailing ETH from its stored anchor.
    dydx_double.set_oracle_price("ETH-USD", "3400")  # 3400 - 1 % = 3366
    await until(
        lambda: stops_at(
            live_sessionmaker, me, exchange, ETH_USD=Decimal(3366), BTC_USD=Decimal(99000)
        )
    )
    await assert_invariant(exchange)
    assert_each_stop_placed_once_within_the_block_budget(dydx_double)
    await logged(other, 2)
    assert moved_by(other) == 2
    brackets = await the_brackets(live_sessionmaker, me)
    assert (brackets["ETH-USD"].trail_anchor, brackets["BTC-USD"].trail_anchor) == (
        Decimal(3400),
        Decimal(100000),
    )
