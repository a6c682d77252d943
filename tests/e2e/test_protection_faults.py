"""Position protection under faults (issue #11, item 8): Redis flushed between an entry's fill
and its legs, the Indexer WebSocket dropped during a take-profit fill, the Indexer lagging
20 s while a take-profit fills, and two workers sharing the queue with one SIGKILLed
mid-bracket. Real web app, arq worker(s), PostgreSQL, Redis, the dYdX double with the real
dydx-v4-client, and the Telegram double.

Every test asserts the invariant, on the Indexer (as a trader's tools see it) and on the
chain itself: while a position is open, resting reduce-only stop-losses cover its whole
size; no leg outlives its position; and each leg was placed, and its sibling cancelled,
exactly once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core.domain.states import AlertState, BracketState, OrderPurpose, OrderState
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.e2e.test_cli import bare_env
from tests.e2e.test_execution_faults import WorkerProcess
from tests.e2e.test_protection import brackets_of, said, texts_of
from tests.e2e.test_protection_monitor import (
    FillClock,
    cancels_of,
    legs_of,
    places,
    subscribed,
    without_advance_cron,
)
from tests.protection_checks import MARKET, assert_invariant, holds, protection, until, venue
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    post_alert,
    running_worker,
    wait_alert,
)

#: Past the take-profit of a long entered at 3,000 with ``tp_pct=2`` (3,060).
PAST_TAKE_PROFIT = "3100"


@pytest.fixture
def fill_clock(dydx_double: DydxDouble) -> Iterator[FillClock]:
    clock = FillClock(dydx_double)
    yield clock
    clock.close()


def chain_of(double: DydxDouble, me: Trader) -> tuple[Decimal, int]:
    """(position size, live legs) of the trader on ``MARKET``, from the chain state itself
    (the Indexer may lag it)."""
    assert me.dydx is not None
    owner = me.dydx.owner_address

    def read() -> tuple[Decimal, int]:
        state = double.state
        held = sum(
            (
                abs(p.size)
                for p in state.positions
                if p.address == owner and p.ticker == MARKET and p.status == "OPEN"
            ),
            Decimal(0),
        )
        legs = sum(
            1
            for record in state.orders.values()
            if record.address == owner and record.is_live and record.is_conditional
        )
        return held, legs

    return double.call(read)


async def assert_chain_invariant(double: DydxDouble, me: Trader) -> None:
    """No leg outlives its position on the chain (the stop-loss legs are conditional)."""
    held, legs = chain_of(double, me)
    if not held:
        assert legs == 0, f"{legs} legs outlived the position on the chain"


async def protect(maker: Maker, web: TestClient, me: Trader) -> None:
    """A long 0.1 ETH-USD entry with a take-profit 2 % above and a stop-loss 1 % below."""
    answer = await post_alert(web, me, tp_pct="2", sl_pct="1")
    assert (await wait_alert(maker, answer["id"], within=60)).state is AlertState.EXECUTED


async def take_profit_then_flat(
    maker: Maker, double: DydxDouble, me: Trader, exchange: Any, *, within: float = 30
) -> None:
    """Move the oracle past the take-profit; the stop-loss is cancelled, once; flat, no leg."""
    legs = await legs_of(maker, me)
    stop = legs[OrderPurpose.STOP_LOSS]
    placed = places(double)
    double.set_oracle_price(MARKET, PAST_TAKE_PROFIT)
    await until(lambda: holds(exchange, Decimal(0), 0), within=within)
    await assert_invariant(exchange)
    await assert_chain_invariant(double, me)
    assert chain_of(double, me) == (Decimal(0), 0)
    assert len(cancels_of(double, stop.client_id)) == 1
    assert places(double) == placed  # nothing placed after the fill
    legs = await legs_of(maker, me)
    assert legs[OrderPurpose.TAKE_PROFIT].state is OrderState.FILLED
    assert legs[OrderPurpose.STOP_LOSS].state is OrderState.CANCELED
    await said(me, "Its stop-loss was cancelled")
    (bracket,) = await brackets_of(maker, me.user_id)
    assert bracket.state is BracketState.CLOSED


async def test_redis_flushed_between_the_entry_fill_and_the_legs(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    redis: Redis,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    async with running_worker(settings):
        # The node fills the entry at once but holds its answer: the job is between the
        # entry's fill and its legs when every key in Redis goes (queue, job, leases).
        dydx_double.node.hang(3, process_first=True)
        answer = await post_alert(web, me, tp_pct="2", sl_pct="1")

        async def entry_filled_on_chain() -> bool:
            broadcasts = dydx_double.node.broadcasts
            return len(broadcasts) == 1 and broadcasts[0].processed

        await until(entry_filled_on_chain)
        assert chain_of(dydx_double, me) == (Decimal("0.1"), 0)  # filled, no leg yet
        await redis.flushdb()

        assert (await wait_alert(live_sessionmaker, answer["id"])).state is AlertState.EXECUTED
        await until(lambda: holds(exchange, Decimal("0.1"), 2), within=30)
        await assert_invariant(exchange)
        assert places(dydx_double) == 3  # the entry and two legs, once each
        await said(me, "Protected")
        # Nothing Redis held is needed for one-cancels-other afterwards.
        await take_profit_then_flat(live_sessionmaker, dydx_double, me, exchange)
        assert sum("Protected" in t for t in texts_of(me)) == 1


async def test_the_websocket_dropped_during_a_take_profit_fill(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    fill_clock: FillClock,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    # Without the advance cron: the monitor alone must recover what the dropped socket lost.
    async with running_worker(settings, cron_jobs=without_advance_cron()) as worker:
        await protect(live_sessionmaker, web, me)
        await until(lambda: holds(exchange, Decimal("0.1"), 2))
        await subscribed(worker, me)
        legs = await legs_of(live_sessionmaker, me)
        take, stop = legs[OrderPurpose.TAKE_PROFIT], legs[OrderPurpose.STOP_LOSS]
        placed = places(dydx_double)

        dydx_double.pause_clock()
        dydx_double.set_oracle_price(MARKET, PAST_TAKE_PROFIT)
        assert dydx_double.drop_websockets(abrupt=True) >= 1
        dydx_double.advance_blocks(2)  # the take-profit triggers, then fills: no socket up
        dydx_double.resume_clock()

        await until(lambda: holds(exchange, Decimal(0), 0), within=30)
        await assert_invariant(exchange)
        await assert_chain_invariant(dydx_double, me)
        (cancelled_at,) = cancels_of(dydx_double, stop.client_id)
        took = (cancelled_at - fill_clock.at[take.client_id]) / 1e9
        # The monitor catches up over REST as it reconnects (or polls while down).
        assert 0 < took < 10, f"fill -> cancel took {took:.3f} s"
        assert places(dydx_double) == placed
        await said(me, "Its stop-loss was cancelled")
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        assert bracket.state is BracketState.CLOSED
        await asyncio.sleep(2)  # nothing more is said about it
        assert sum("Take-profit hit" in t and "stop-loss was" in t for t in texts_of(me)) == 1


async def test_the_indexer_lagging_20_s_while_a_take_profit_fills(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    async with running_worker(settings):
        await protect(live_sessionmaker, web, me)
        await until(lambda: holds(exchange, Decimal("0.1"), 2))
        legs = await legs_of(live_sessionmaker, me)
        stop = legs[OrderPurpose.STOP_LOSS]
        placed = places(dydx_double)

        dydx_double.indexer.lag = 20.0
        dydx_double.set_oracle_price(MARKET, PAST_TAKE_PROFIT)

        async def flat_on_chain() -> bool:
            return chain_of(dydx_double, me)[0] == 0

        await until(flat_on_chain, within=10)
        # The Indexer still shows the position and both legs: nothing is placed again, and
        # nothing is cancelled on what it cannot know yet.
        await asyncio.sleep(8)
        assert await protection(exchange) == (Decimal("0.1"), Decimal("0.1"), 2)
        assert places(dydx_double) == placed
        assert not cancels_of(dydx_double, stop.client_id)

        async def stop_cancelled() -> bool:
            return bool(cancels_of(dydx_double, stop.client_id))

        await until(stop_cancelled, within=40)  # once the Indexer shows the fill
        await assert_chain_invariant(dydx_double, me)
        assert chain_of(dydx_double, me) == (Decimal(0), 0)
        dydx_double.indexer.lag = 0
        await until(lambda: holds(exchange, Decimal(0), 0), within=30)
        await assert_invariant(exchange)
        assert len(cancels_of(dydx_double, stop.client_id)) == 1
        assert places(dydx_double) == placed
        await said(me, "Its stop-loss was cancelled")
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        assert bracket.state is BracketState.CLOSED


# ------------------------------------------------------------------ two workers, one killed


def _output(process: WorkerProcess) -> str:
    """What a running worker process wrote so far (without moving its file offset)."""
    fd = process._log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


@pytest.fixture
def two_workers(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    env = bare_env({**base_env, **telegram_env, **dydx_env})
    pair = (WorkerProcess(env), WorkerProcess(env))
    yield pair
    for process in pair:
        process.stop()


async def test_two_workers_share_the_queue_and_one_is_killed_mid_bracket(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    two_workers: tuple[WorkerProcess, WorkerProcess],
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    for process in two_workers:
        process.start()

    async def both_up() -> bool:
        return all("Starting worker" in _output(p) for p in two_workers)

    await until(both_up, within=30)
    # The entry fills at once, its answer held 2 s; then the stop-loss leg (placed first)
    # reaches the chain and its answer hangs: the worker running the job is killed there,
    # mid-bracket (the stop-loss resting, no take-profit yet).
    dydx_double.node.hang(2, process_first=True)
    answer = await post_alert(web, me, tp_pct="2", sl_pct="1")

    async def processed(n: int) -> bool:
        broadcasts = dydx_double.node.broadcasts
        return len(broadcasts) >= n and all(b.processed for b in broadcasts[:n])

    await until(lambda: processed(1))
    dydx_double.node.hang(120, process_first=True)
    await until(lambda: processed(2))
    (victim,) = [p for p in two_workers if "order_committed" in _output(p)]
    victim.kill()
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.PLACING
    assert chain_of(dydx_double, me) == (Decimal("0.1"), 1)  # the stop-loss alone
    await assert_invariant(exchange)

    # The survivor finishes the bracket: its cron, its monitor, or the job run again.
    await until(lambda: holds(exchange, Decimal("0.1"), 2), within=40)
    await assert_invariant(exchange)
    assert chain_of(dydx_double, me) == (Decimal("0.1"), 2)
    row = await wait_alert(live_sessionmaker, answer["id"], within=60)
    assert row.state is AlertState.EXECUTED
    await said(me, "Protected")
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.RESTING
    legs = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id]
    for leg in legs:  # a replaced generation was cancelled, never left behind
        if leg.generation != bracket.generation:
            assert leg.state is OrderState.CANCELED, (leg.purpose, leg.generation, leg.state)
    current = [leg for leg in legs if leg.generation == bracket.generation]
    assert sorted(leg.purpose for leg in current) == [
        OrderPurpose.STOP_LOSS,
        OrderPurpose.TAKE_PROFIT,
    ]

    await take_profit_then_flat(live_sessionmaker, dydx_double, me, exchange, within=40)
    assert sum("Protected" in t for t in texts_of(me)) == 1
