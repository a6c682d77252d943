"""Protection of limit entries (issue #11): an entry that rests past its job's wait and fills
later, one a counterparty fills partly (then the rest, or never the rest). Real web app, arq
worker (with its monitor and crons), PostgreSQL, Redis, the dYdX double with the real
dydx-v4-client, and the Telegram double; the partial fills are a counterparty taking part of
the resting entry on the double's book (a ``MAKER`` fill, the order ``OPEN`` with its
``totalFilled``).

Every test asserts the invariant: while a position is open and its owner asked for a
stop-loss, resting reduce-only stop-losses cover its whole size; no leg outlives its position;
every change of protection reaches the trader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient
from arq.constants import result_key_prefix
from redis.asyncio import Redis

from core.db.models import Order
from core.domain.states import AlertState, BracketState, OrderPurpose, OrderState
from core.exchange.orders import OrderKind
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.jobs import alert_job_id
from core.texts.protection import LEG_REPLACED
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.e2e.test_protection import brackets_of, said, texts_of
from tests.protection_checks import MARKET, assert_invariant, holds, until, venue
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    post_alert,
    running_web,
    wait_alert,
)

#: A limit buy below the oracle (3,000): it rests on the book.
LIMIT = "2950"
#: Below the limit: the resting remainder is filled by the book.
PAST_LIMIT = "2940"
#: How long (s) a grown position may be short of stop-losses: one step after the fill (the
#: monitor's), well below the 5 s a resting bracket waits for the cron's next look.
UNDER_COVERED_AT_MOST = 4.0
#: The legs of a long entered at 2,950 with ``tp_pct=2`` and ``sl_pct=1``.
LEGS_TEXT = "take-profit $3,009.00 and stop-loss $2,920.50 placed"


@pytest.fixture
async def web(
    settings: Settings, live_sessionmaker: Maker, redis: Redis
) -> AsyncIterator[TestClient]:
    async with running_web(settings) as client:
        yield client


async def limit_entry(web: TestClient, me: Trader) -> int:
    """A limit buy of 0.1 at :data:`LIMIT` with a take-profit 2 % and a stop-loss 1 % away;
    the alert's id."""
    answer = await post_alert(web, me, order_type="limit", price=LIMIT, tp_pct="2", sl_pct="1")
    alert_id: int = answer["id"]
    return alert_id


async def resting_entry(maker: Maker, dydx: DydxDouble, me: Trader) -> tuple[Order, str]:
    """The trader's entry once it rests on the book: its ledger row and its Indexer id."""
    assert me.dydx is not None
    owner = me.dydx.owner_address
    found: list[tuple[Order, str]] = []

    async def rests() -> bool:
        entries = [o for o in await orders_of(maker, me.user_id) if o.purpose is OrderPurpose.ENTRY]
        if not entries:
            return False
        try:
            indexer_id = dydx.resting_order_id(owner, entries[0].client_id)
        except KeyError:
            return False
        found.append((entries[0], indexer_id))
        return True

    await until(rests, within=30)
    return found[-1]


async def job_done(redis: Redis, alert_id: int) -> bool:
    """Whether the alert's execution job has finished (arq stored its result)."""
    return bool(await redis.exists(result_key_prefix + alert_job_id(alert_id)))


async def entry_of(maker: Maker, me: Trader) -> Order:
    """The trader's entry row, fresh."""
    return next(o for o in await orders_of(maker, me.user_id) if o.purpose is OrderPurpose.ENTRY)


@dataclass
class CoverWatch:
    """Samples the venue while a position grows: each resting reduce-only stop-loss's size
    against the position. Open orders are read before the position, so a stop placed after
    a fill is never compared with the position before it (the position only grows here)."""

    exchange: Exchange
    #: Stop-losses sized above the position when sampled: (position, stop).
    above: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    #: The longest stretch (s) an open position had less than its size under resting stops.
    longest_short: float = 0.0
    samples: int = 0

    async def started(self, samples: int) -> bool:
        """Whether this many samples were taken."""
        return self.samples >= samples

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        short_since: float | None = None
        while True:
            orders = await self.exchange.open_orders()
            positions = await self.exchange.positions()
            held = next((p.size for p in positions if p.market == MARKET), Decimal(0))
            stops = [
                o.size
                for o in orders
                if o.market == MARKET and o.kind is OrderKind.STOP and o.reduce_only
            ]
            self.samples += 1
            self.above += [(held, stop) for stop in stops if stop > held]
            now = loop.time()
            if held and sum(stops, Decimal(0)) < held:
                short_since = now if short_since is None else short_since
                self.longest_short = max(self.longest_short, now - short_since)
            else:
                short_since = None
            await asyncio.sleep(0.05)


async def test_a_limit_entry_filled_after_its_jobs_wait_gets_legs_for_its_whole_size(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    redis: Redis,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    alert_id = await limit_entry(web, me)
    await resting_entry(live_sessionmaker, dydx_double, me)
    await until(lambda: job_done(redis, alert_id), within=45)
    # The job waited, then left the entry resting: nothing filled, nothing to protect yet.
    entry = await entry_of(live_sessionmaker, me)
    assert (entry.state, entry.filled_size) == (OrderState.SUBMITTED, Decimal(0))
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.REQUESTED
    assert await holds(exchange, Decimal(0), 0)

    dydx_double.set_oracle_price(MARKET, PAST_LIMIT)  # the book fills the resting entry
    await until(lambda: holds(exchange, Decimal("0.1"), 2), within=30)
    await assert_invariant(exchange)
    text = await said(me, "Protected")
    assert LEGS_TEXT in text
    assert "Legs placed for 0.1 ETH-USD" in text
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert (bracket.state, bracket.target_size, bracket.generation) == (
        BracketState.RESTING,
        Decimal("0.1"),
        1,
    )
    assert (await wait_alert(live_sessionmaker, alert_id)).state is AlertState.EXECUTED
    await asyncio.sleep(6)  # past a resting bracket's recheck: nothing more placed or said
    assert sum("Protected" in t for t in texts_of(me)) == 1, texts_of(me)
    assert len(await orders_of(live_sessionmaker, me.user_id)) == 3
    await assert_invariant(exchange)


async def test_a_partly_filled_limit_entry_is_covered_for_its_fill_then_resized_to_the_rest(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    redis: Redis,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    alert_id = await limit_entry(web, me)
    _, indexer_id = await resting_entry(live_sessionmaker, dydx_double, me)

    # A counterparty takes 0.04 of the 0.1 while the job still waits for the entry.
    dydx_double.fill_resting(indexer_id, "0.04")
    await until(lambda: holds(exchange, Decimal("0.04"), 2), within=30)
    await assert_invariant(exchange)
    text = await said(me, "Legs placed for 0.04 ETH-USD")
    assert LEGS_TEXT in text
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert (bracket.target_size, bracket.generation) == (Decimal("0.04"), 1)
    first_legs = {o.id for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id}

    # The rest fills once the job has left the entry to the monitor and the crons.
    await until(lambda: job_done(redis, alert_id), within=45)
    assert await holds(exchange, Decimal("0.04"), 2)
    watch = CoverWatch(exchange)
    sampling = asyncio.create_task(watch.run())
    try:
        await until(lambda: watch.started(3))
        dydx_double.set_oracle_price(MARKET, PAST_LIMIT)
        await until(lambda: holds(exchange, Decimal("0.1"), 2), within=30)
        await asyncio.sleep(1)  # and a while after: the old legs stay cancelled
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    await assert_invariant(exchange)
    assert watch.above == [], f"stop-losses above the position: {watch.above}"
    # The new generation is placed on the fill's step, then the old one cancelled: the
    # position is short of cover only while that step runs.
    assert watch.longest_short < UNDER_COVERED_AT_MOST, (
        f"under-covered for {watch.longest_short:.1f} s"
    )

    text = await said(me, "Legs resized to 0.1 ETH-USD")
    assert LEGS_TEXT in text
    assert sum("Protected" in t for t in texts_of(me)) == 2, texts_of(me)
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert (bracket.state, bracket.target_size, bracket.generation) == (
        BracketState.RESTING,
        Decimal("0.1"),
        2,
    )
    legs = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id]
    old = [o for o in legs if o.id in first_legs]
    new = [o for o in legs if o.id not in first_legs]
    assert {(o.state, o.size, o.error) for o in old} == {
        (OrderState.CANCELED, Decimal("0.04"), LEG_REPLACED)
    }
    assert {(o.purpose, o.size, o.generation) for o in new} == {
        (OrderPurpose.STOP_LOSS, Decimal("0.1"), 2),
        (OrderPurpose.TAKE_PROFIT, Decimal("0.1"), 2),
    }
    entry = await entry_of(live_sessionmaker, me)
    assert (entry.state, entry.filled_size) == (OrderState.FILLED, Decimal("0.1"))
    assert (await wait_alert(live_sessionmaker, alert_id)).state is AlertState.EXECUTED


async def test_a_partly_filled_limit_entry_whose_rest_is_cancelled_stays_covered_for_its_fill(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    redis: Redis,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    alert_id = await limit_entry(web, me)
    _, indexer_id = await resting_entry(live_sessionmaker, dydx_double, me)
    await until(lambda: job_done(redis, alert_id), within=45)

    # After the job's wait a counterparty takes 0.04; then the owner cancels the rest.
    dydx_double.fill_resting(indexer_id, "0.04")
    await until(lambda: holds(exchange, Decimal("0.04"), 2), within=30)
    await assert_invariant(exchange)
    text = await said(me, "Legs placed for 0.04 ETH-USD")
    assert LEGS_TEXT in text
    assert dydx_double.external_cancel(indexer_id).ok

    async def entry_final() -> bool:
        return (await entry_of(live_sessionmaker, me)).state.is_final

    await until(entry_final, within=30)
    entry = await entry_of(live_sessionmaker, me)
    assert (entry.state, entry.filled_size) == (OrderState.CANCELED, Decimal("0.04"))
    assert (await wait_alert(live_sessionmaker, alert_id)).state is AlertState.EXECUTED
    await said(me, "Partly filled: 0.04 of 0.1")  # the trader hears what the entry came to
    await asyncio.sleep(6)  # past a resting bracket's recheck: the legs stay as they are
    assert await holds(exchange, Decimal("0.04"), 2)
    await assert_invariant(exchange)
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert (bracket.state, bracket.target_size, bracket.generation) == (
        BracketState.RESTING,
        Decimal("0.04"),
        1,
    )
    assert sum("Protected" in t for t in texts_of(me)) == 1, texts_of(me)
    assert not any("Not filled" in t for t in texts_of(me)), texts_of(me)
