"""Who ended a position a bracket protected, for the message that says its legs were
cancelled."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Bracket, Order
from core.db.uow import UnitOfWork
from core.domain.states import OrderPurpose
from core.exchange.errors import ExchangeError
from core.exchange.port import Exchange
from core.texts.protection import ClosedBy

#: Our orders that can close or flip a position (legs are the bracket's own).
_CLOSERS = frozenset({OrderPurpose.CLOSE, OrderPurpose.MANUAL, OrderPurpose.ENTRY})
#: An order of ours that may have closed a position is waited for this long to settle before
#: the trader is told someone else closed it.
CLOSER_SETTLES_WITHIN = timedelta(seconds=60)


async def closed_by_whom(
    sessionmaker: async_sessionmaker[AsyncSession],
    exchange: Exchange,
    bracket: Bracket,
    entry: Order,
) -> ClosedBy | None:
    """Who ended the position: one of our orders after the entry, a liquidation fill (no
    order id, per the chain facts), or someone outside tv2dydx.

    Returns:
        None while one of our orders that may have done it is young and not settled yet:
        the venue can show its fill before its job recorded it.
    """
    young = utcnow() - CLOSER_SETTLES_WITHIN
    async with UnitOfWork(sessionmaker) as uow:
        ours = [
            (order.purpose, order.filled_size > 0, order.created_at > young)
            for order in await uow.orders.closers_after(
                entry.user_id, bracket.market, entry.id, paper=bracket.paper
            )
            if order.purpose in _CLOSERS and order.side is not entry.side
        ]
    filled = [purpose for purpose, did_fill, _ in ours if did_fill]
    if filled:
        return ClosedBy.BOT if filled[0] is OrderPurpose.MANUAL else ClosedBy.ALERT
    if any(young_and_open for _, _, young_and_open in ours):
        return None
    try:
        fills = await exchange.fills(bracket.market, limit=50)
    except ExchangeError:
        fills = []
    if any(fill.order_id is None and fill.created_at >= bracket.created_at for fill in fills):
        return ClosedBy.LIQUIDATION
    return ClosedBy.OUTSIDE
