"""Position protection end to end: brackets committed with their entry, legs placed by whoever
sees the fill first, one-cancels-other per bracket, legs cancelled with their position by any
route. Real web app, arq worker, PostgreSQL, Redis, the dYdX double with the real
dydx-v4-client, and the Telegram double (a killed worker: ``test_protection_kills.py``).

Every test asserts the invariant: while a position is open and its owner asked for a
stop-loss, resting reduce-only stop-losses cover its whole size; no leg outlives its position.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.db.models import Bracket
from core.db.repositories.execution import ExecutionRepository
from core.domain.states import AlertState, BracketState, OrderPurpose, OrderState
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.execution.pipeline import ExecutionService
from core.services.trading import TradingService
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.protection_checks import MARKET, assert_invariant, holds, until, venue
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    post_alert,
    wait_alert,
)


async def brackets_of(maker: Maker, user_id: int) -> list[Bracket]:
    async with maker() as session:
        rows = await session.scalars(
            select(Bracket).where(Bracket.user_id == user_id).order_by(Bracket.id)
        )
        return list(rows.all())


def texts_of(me: Trader) -> list[str]:
    return [message.text or "" for message in me.chat.bot_messages]


async def said(me: Trader, fragment: str, within: float = 30) -> str:
    async def found() -> bool:
        return any(fragment in text for text in texts_of(me))

    await until(found, within)
    return next(text for text in texts_of(me) if fragment in text)


async def protected_entry(maker: Maker, web: TestClient, me: Trader, **fields: Any) -> None:
    answer = await post_alert(web, me, **fields)
    assert (await wait_alert(maker, answer["id"])).state is AlertState.EXECUTED


async def test_an_entry_with_tp_and_sl_rests_both_legs_and_says_protected_once(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await assert_invariant(exchange)
    text = await said(me, "Protected")
    assert "take-profit $3,060.00 and stop-loss $2,970.00 placed" in text
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.RESTING
    assert bracket.target_size == Decimal("0.1")
    assert bracket.generation == 1
    await asyncio.sleep(2)  # the cron keeps looking: nothing more is placed or said
    assert sum("Protected" in t for t in texts_of(me)) == 1
    assert len([o for o in await orders_of(live_sessionmaker, me.user_id)]) == 3


async def test_stacked_entries_a_take_profit_cancels_only_its_own_stop_loss(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(
        live_sessionmaker, web, me, tp_price="3050", sl_price="2900", strategy="near"
    )
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await protected_entry(
        live_sessionmaker, web, me, tp_price="3300", sl_price="2950", strategy="far"
    )
    await until(lambda: holds(exchange, Decimal("0.2"), 4))
    await assert_invariant(exchange)
    near, far = await brackets_of(live_sessionmaker, me.user_id)

    dydx_double.set_oracle_price(MARKET, "3060")  # only the nearer take-profit triggers
    await until(lambda: holds(exchange, Decimal("0.1"), 2), within=40)
    await assert_invariant(exchange)
    text = await said(me, "Its stop-loss was cancelled (only this entry's)")
    assert "Take-profit hit" in text
    assert "still cover 0.1 ETH-USD" in text
    # The near entry's trade: 0.1 bought at 3,000, sold at 3,060, less the taker fee.
    assert "Realized P&L: +$5.85." in text
    legs = {
        (o.bracket_id, o.purpose): o
        for o in await orders_of(live_sessionmaker, me.user_id)
        if o.bracket_id is not None
    }
    assert legs[(near.id, OrderPurpose.TAKE_PROFIT)].state is OrderState.FILLED
    assert legs[(near.id, OrderPurpose.STOP_LOSS)].state is OrderState.CANCELED
    assert legs[(far.id, OrderPurpose.STOP_LOSS)].state is OrderState.SUBMITTED
    assert legs[(far.id, OrderPurpose.TAKE_PROFIT)].state is OrderState.SUBMITTED
    near, far = await brackets_of(live_sessionmaker, me.user_id)
    assert (near.state, far.state) == (BracketState.CLOSED, BracketState.RESTING)


@pytest.mark.parametrize("route", ["web-app", "liquidation"])
async def test_a_position_closed_outside_cancels_every_leg_and_tells_the_trader(
    route: str,
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    if route == "web-app":
        result, _ = dydx_double.external_trade(
            me.dydx.owner_address, MARKET, "SELL", "0.1", reduce_only=True
        )
        assert result.ok, result.log
        expected = "closed outside tv2dydx"
    else:
        dydx_double.liquidate(me.dydx.owner_address, MARKET, "2980")
        expected = "was liquidated"
    await until(lambda: holds(exchange, Decimal(0), 0), within=30)
    await assert_invariant(exchange)
    text = await said(me, expected)
    assert "take-profit and stop-loss orders were cancelled" in text
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.CLOSED
    assert not any("Not filled" in t for t in texts_of(me))


async def test_panic_closes_and_cancels_the_legs_with_the_right_message(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    store = ExecutionRepository(settings.database_url.get_secret_value())
    try:
        execution = ExecutionService(
            live_sessionmaker, exchanges, store, max_lag=timedelta(seconds=60)
        )
        report = await TradingService(live_sessionmaker, exchanges, execution).panic(me.user_id)
    finally:
        await store.close()
    assert report.failures == []
    assert [c.state for c in report.closed] == [OrderState.FILLED]
    assert report.cancelled == 0  # the legs are protection's to cancel, once the close filled
    await until(lambda: holds(exchange, Decimal(0), 0))
    await assert_invariant(exchange)
    text = await said(me, "closed from the bot (/close or /panic)")
    assert "take-profit and stop-loss orders were cancelled" in text
    await asyncio.sleep(6)  # past a reconciliation round: no leg is reported "not filled"
    assert not any("Not filled" in t for t in texts_of(me)), texts_of(me)
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.CLOSED


async def test_a_reduce_in_the_web_app_shrinks_the_newest_brackets_first(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1", strategy="old")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await protected_entry(live_sessionmaker, web, me, tp_pct="3", sl_pct="2", strategy="new")
    await until(lambda: holds(exchange, Decimal("0.2"), 4))

    result, _ = dydx_double.external_trade(
        me.dydx.owner_address, MARKET, "SELL", "0.15", reduce_only=True
    )
    assert result.ok, result.log
    # The newest bracket gives up its whole 0.1, the oldest 0.05: its legs are resized
    # (the new generation placed before the old is cancelled).
    await until(lambda: holds(exchange, Decimal("0.05"), 2), within=30)
    await assert_invariant(exchange)

    async def settled() -> bool:
        # The resized legs rest on the venue a moment before the step commits RESTING.
        brackets = await brackets_of(live_sessionmaker, me.user_id)
        return brackets[0].state is BracketState.RESTING

    await until(settled, within=30)
    old, new = await brackets_of(live_sessionmaker, me.user_id)
    assert (new.state, new.reduced_size) == (BracketState.CLOSED, Decimal("0.1"))
    assert (old.state, old.target_size, old.generation) == (
        BracketState.RESTING,
        Decimal("0.05"),
        2,
    )
    await said(me, "Position reduced")
    await said(me, "Legs resized to 0.05 ETH-USD")


async def test_a_trailing_stop_alone_starts_as_a_stop_loss_trail_pct_away(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, trail_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 1))
    await assert_invariant(exchange)
    text = await said(me, "Protected")
    assert "stop-loss $2,970.00 placed" in text
    assert not any("not supported" in t for t in texts_of(me))
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert (bracket.trail_pct, bracket.generation, bracket.sl_trigger) == (
        Decimal(1),
        1,
        Decimal(2970),
    )
