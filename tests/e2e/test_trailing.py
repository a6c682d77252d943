"""Trailing stops and breakeven end to end: the worker's monitor streams the oracle from the
dYdX double's Indexer WebSocket, the trailing service moves the stop-loss (the new leg placed
before the old one is cancelled), the protection step's one-cancels-other ends the bracket when
the moved stop triggers. Real web app and arq worker, PostgreSQL, Redis, the dYdX double with
the real dydx-v4-client, and the Telegram double.
"""

from __future__ import annotations

import asyncio
from decimal import ROUND_CEILING, Decimal

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.db.models import Bracket
from core.db.repositories.brackets import position_lock_key
from core.domain.states import BracketState, OrderPurpose, OrderState
from core.exchange.orders import OrderKind
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.protection.trailing_service import DEFAULT_TAKER_FEE_RATE
from doubles.dydx.double import DydxDouble
from doubles.dydx.node import BroadcastRecord
from doubles.telegram import TelegramDouble
from tests.e2e.test_protection import brackets_of, protected_entry, said, texts_of
from tests.protection_checks import MARKET, assert_invariant, holds, until, venue
from tests.trading_stack import Maker, Trader, add_trader, orders_of, running_worker

SUBTICKS_PER_USD = Decimal(1_000_000)  # ETH-USD on the double: 2970 USD = 2_970_000_000


def stop_places(dydx: DydxDouble) -> list[tuple[int, Decimal, BroadcastRecord]]:
    """(client id, trigger, record) of every stop-loss placement the node accepted."""
    return [
        (
            message.order.order_id.client_id,
            Decimal(message.order.conditional_order_trigger_subticks) / SUBTICKS_PER_USD,
            record,
        )
        for record in dydx.node.broadcasts
        if record.accepted
        for message in record.messages
        if type(message).__name__ == "MsgPlaceOrder"
        and message.order.conditional_order_trigger_subticks
        and message.order.condition_type == 1  # CONDITION_TYPE_STOP_LOSS
    ]


def cancel_index(dydx: DydxDouble, client_id: int) -> int:
    """Where the accepted cancel of ``client_id`` is in the node's broadcast record."""
    for index, record in enumerate(dydx.node.broadcasts):
        if not record.accepted:
            continue
        for message in record.messages:
            if (
                type(message).__name__ == "MsgCancelOrder"
                and message.order_id.client_id == client_id
            ):
                return index
    raise AssertionError(f"no cancel of {client_id}")


async def resting_stops(exchange: Exchange) -> list[Decimal]:
    return sorted(
        o.trigger_price or Decimal(0)
        for o in await exchange.open_orders()
        if o.market == MARKET and o.kind is OrderKind.STOP
    )


async def the_bracket(maker: Maker, me: Trader) -> Bracket:
    (bracket,) = await brackets_of(maker, me.user_id)
    return bracket


async def stop_at(maker: Maker, me: Trader, exchange: Exchange, trigger: Decimal) -> None:
    """Wait until the ledger and the venue both have exactly one stop, at ``trigger``."""

    async def there() -> bool:
        bracket = await the_bracket(maker, me)
        return bracket.sl_trigger == trigger and await resting_stops(exchange) == [trigger]

    await until(there, 30)


async def rested(maker: Maker, me: Trader, exchange: Exchange, legs: int) -> None:
    await until(lambda: holds(exchange, Decimal("0.1"), legs))

    async def resting() -> bool:
        return (await the_bracket(maker, me)).state is BracketState.RESTING

    await until(resting)


async def test_a_trailing_stop_moves_up_new_before_old_never_down_and_triggers_with_oco(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    async with running_worker(settings):
        me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
        exchange = await venue(exchanges, me)
        await protected_entry(live_sessionmaker, web, me, tp_pct="10", trail_pct="1")
        await rested(live_sessionmaker, me, exchange, 2)
        text = await said(me, "Protected")
        assert "take-profit $3,300.00 and stop-loss $2,970.00 placed" in text
        assert not any("not supported" in t for t in texts_of(me))
        ((first_id, first, _),) = stop_places(dydx_double)
        assert first == Decimal(2970)

        dydx_double.set_oracle_price(MARKET, "3100")  # the trail: 3100 - 1 % = 3069
        await stop_at(live_sessionmaker, me, exchange, Decimal(3069))
        await assert_invariant(exchange)
        new_id, new, new_record = stop_places(dydx_double)[-1]
        assert new == Decimal(3069)
        place_index = dydx_double.node.broadcasts.index(new_record)
        assert place_index < cancel_index(dydx_double, first_id)  # new before old
        moved = await said(me, "Stop moved")
        assert "ETH-USD long: stop-loss $2,970.00 → $3,069.00 (trailing)" in moved
        bracket = await the_bracket(live_sessionmaker, me)
        # A new generation (two if the chain's 2-per-block limit refused the first try).
        assert bracket.trail_anchor == Decimal(3100)
        moved_generation = bracket.generation
        assert moved_generation > 1

        dydx_double.set_oracle_price(MARKET, "3080")  # falls: the stop stays
        dydx_double.advance_blocks(4)
        await asyncio.sleep(1.5)
        assert [t for _, t, _ in stop_places(dydx_double)] == [Decimal(2970), Decimal(3069)]
        assert (await the_bracket(live_sessionmaker, me)).sl_trigger == Decimal(3069)

        dydx_double.set_oracle_price(MARKET, "3060")  # through the stop: it triggers
        hit = await said(me, "ETH-USD · Stop-loss hit", within=40)
        assert "Its take-profit was cancelled" in hit
        await until(lambda: holds(exchange, Decimal(0), 0))
        await assert_invariant(exchange)
        legs = {
            (o.purpose, o.generation): o
            for o in await orders_of(live_sessionmaker, me.user_id)
            if o.purpose is not OrderPurpose.ENTRY
        }
        assert legs[(OrderPurpose.STOP_LOSS, moved_generation)].state is OrderState.FILLED
        assert legs[(OrderPurpose.STOP_LOSS, 1)].state is OrderState.CANCELED
        assert legs[(OrderPurpose.TAKE_PROFIT, 1)].state is OrderState.CANCELED
        assert (await the_bracket(live_sessionmaker, me)).state is BracketState.CLOSED
        assert new_id != first_id


async def test_breakeven_moves_the_stop_to_entry_plus_fees_once(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    async with running_worker(settings):
        me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
        exchange = await venue(exchanges, me)
        await protected_entry(live_sessionmaker, web, me, sl_pct="2", be_trigger_pct="1")
        await rested(live_sessionmaker, me, exchange, 1)
        entry = next(
            o
            for o in await orders_of(live_sessionmaker, me.user_id)
            if o.purpose is OrderPurpose.ENTRY
        )
        assert entry.average_price is not None
        tick = (await exchange.market(MARKET)).tick_size
        fee = DEFAULT_TAKER_FEE_RATE
        even = entry.average_price * (1 + fee) / (1 - fee)
        breakeven = (even / tick).to_integral_value(rounding=ROUND_CEILING) * tick
        assert (await the_bracket(live_sessionmaker, me)).be_trigger_pct == Decimal(1)

        dydx_double.set_oracle_price(MARKET, str(entry.average_price * Decimal("1.005")))
        await asyncio.sleep(2)
        assert len(stop_places(dydx_double)) == 1  # half-way: not yet

        dydx_double.set_oracle_price(MARKET, str(entry.average_price * Decimal("1.011")))
        await stop_at(live_sessionmaker, me, exchange, breakeven)
        moved = await said(me, "Stop moved")
        assert "(breakeven: entry + fees)" in moved
        assert (await the_bracket(live_sessionmaker, me)).breakeven_done

        dydx_double.set_oracle_price(MARKET, str(entry.average_price * Decimal("1.05")))
        await asyncio.sleep(2)
        assert len(stop_places(dydx_double)) == 2  # once
        assert sum("Stop moved" in t for t in texts_of(me)) == 1
        await assert_invariant(exchange)


async def test_a_burst_of_ticks_is_coalesced_within_the_stateful_order_budget(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    async with running_worker(settings):
        me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
        exchange = await venue(exchanges, me)
        await protected_entry(live_sessionmaker, web, me, trail_pct="1")
        await rested(live_sessionmaker, me, exchange, 1)
        ticks = [Decimal(3000 + 10 * n) for n in range(1, 31)]
        for price in ticks:
            dydx_double.set_oracle_price(MARKET, str(price))
            await asyncio.sleep(0.03)
        await stop_at(live_sessionmaker, me, exchange, Decimal(3267))  # 3300 - 1 %
        await assert_invariant(exchange)
        moves = stop_places(dydx_double)[1:]
        assert len(moves) < len(ticks)  # coalesced
        per_block: dict[int, int] = {}
        for _, _, record in moves:
            per_block[record.height] = per_block.get(record.height, 0) + 1
        assert max(per_block.values()) <= 2  # the chain's 2 stateful orders per block
        assert len(moves) <= 20  # and 20 per 100 blocks
        triggers = [trigger for _, trigger, _ in moves]
        assert triggers == sorted(triggers)  # only ever upwards
        await asyncio.sleep(4)  # batched: a few messages, not one per move
        told = [t for t in texts_of(me) if "Stop moved" in t]
        assert 1 <= len(told) <= len(moves)
        assert len(set(told)) == len(told)
        assert "$3,267.00 (trailing)" in told[-1]


async def test_a_restarted_worker_resumes_from_the_ledger_without_moving_back(
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
        await protected_entry(live_sessionmaker, web, me, trail_pct="1")
        await rested(live_sessionmaker, me, exchange, 1)
        dydx_double.set_oracle_price(MARKET, "3100")
        await stop_at(live_sessionmaker, me, exchange, Decimal(3069))
    dydx_double.set_oracle_price(MARKET, "3080")  # while no worker runs (above the stop)
    async with running_worker(settings):
        await asyncio.sleep(3)
        assert (await the_bracket(live_sessionmaker, me)).sl_trigger == Decimal(3069)
        assert len(stop_places(dydx_double)) == 2
        dydx_double.set_oracle_price(MARKET, "3090")  # below the stored anchor: no move
        await asyncio.sleep(2)
        assert len(stop_places(dydx_double)) == 2
        dydx_double.set_oracle_price(MARKET, "3120")  # past it: 3120 - 1 % = 3088.8
        await stop_at(live_sessionmaker, me, exchange, Decimal("3088.8"))
        await assert_invariant(exchange)
        bracket = await the_bracket(live_sessionmaker, me)
        assert (bracket.trail_anchor, bracket.state) == (Decimal(3120), BracketState.RESTING)


async def test_a_rate_limited_move_backs_off_and_lands_later_the_old_stop_resting(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    async with running_worker(settings):
        me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
        exchange = await venue(exchanges, me)
        await protected_entry(live_sessionmaker, web, me, trail_pct="1")
        await rested(live_sessionmaker, me, exchange, 1)
        dydx_double.node.reject_next(1, code=5001)  # the block rate limit
        dydx_double.set_oracle_price(MARKET, "3100")

        async def refused() -> bool:
            legs = await orders_of(live_sessionmaker, me.user_id)
            return any(o.state is OrderState.REJECTED for o in legs)

        await until(refused)
        assert await resting_stops(exchange) == [Decimal(2970)]  # the old stop still covers
        await stop_at(live_sessionmaker, me, exchange, Decimal(3069))
        bracket = await the_bracket(live_sessionmaker, me)
        assert bracket.state is BracketState.RESTING
        await assert_invariant(exchange)


async def test_a_first_move_that_meets_a_busy_position_lands_once_the_position_is_free(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    async with running_worker(settings):
        me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
        exchange = await venue(exchanges, me)
        await protected_entry(live_sessionmaker, web, me, trail_pct="1")
        await rested(live_sessionmaker, me, exchange, 1)
        await asyncio.sleep(1.5)  # the trailing service has read the bracket
        key = position_lock_key((me.user_id, False, MARKET))
        async with live_sessionmaker() as session, session.begin():
            # A protection step (or the trader's change) holds the position: the move waits.
            await session.execute(select(func.pg_advisory_xact_lock(key)))
            dydx_double.set_oracle_price(MARKET, "3100")
            await asyncio.sleep(2)
            assert await resting_stops(exchange) == [Decimal(2970)]
        # Held back to a later block, the move must see that block come (it knew no height
        # before its first move, and never retried).
        await stop_at(live_sessionmaker, me, exchange, Decimal(3069))  # 3100 - 1 %
        await assert_invariant(exchange)
        assert len(stop_places(dydx_double)) == 2  # the first stop, and this move once
