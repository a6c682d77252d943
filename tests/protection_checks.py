"""The protection invariant, read from the venue as a trader's tools would see it: while a
position is open and its owner asked for a stop-loss, resting reduce-only stop-losses cover
its whole size; no leg outlives its position."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

from core.domain.preferences import Preferences
from core.exchange.orders import OrderKind
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from tests.trading_stack import Trader

MARKET = "ETH-USD"
_LEG_KINDS = (OrderKind.STOP, OrderKind.TAKE_PROFIT)


async def venue(exchanges: ExchangeProvider, me: Trader) -> Exchange:
    """The trader's live venue."""
    return await exchanges.for_user(me.user_id, Preferences.from_json({}))


async def until(predicate: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    """Wait until ``predicate`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def protection(exchange: Exchange) -> tuple[Decimal, Decimal, int]:
    """(position size, resting reduce-only stop-loss size, resting legs) on the market."""
    held = next((p.size for p in await exchange.positions() if p.market == MARKET), Decimal(0))
    legs = [o for o in await exchange.open_orders() if o.market == MARKET and o.kind in _LEG_KINDS]
    stops = sum((o.size for o in legs if o.kind is OrderKind.STOP and o.reduce_only), Decimal(0))
    return held, stops, len(legs)


async def holds(exchange: Exchange, held: Decimal, legs: int) -> bool:
    """Whether the position is ``held`` with ``legs`` legs resting and the invariant holds."""
    now_held, stops, resting = await protection(exchange)
    return now_held == held and resting == legs and (stops == held if held else resting == 0)


async def assert_invariant(exchange: Exchange) -> None:
    """The invariant, as an assertion."""
    held, stops, legs = await protection(exchange)
    if held:
        assert stops == held, f"stop-losses cover {stops} of a {held} position"
    else:
        assert legs == 0, f"{legs} legs outlived their position"
