"""Realized P&L: what each fill realizes against the position it met."""

from __future__ import annotations

from decimal import Decimal

from core.db.models import Order
from core.domain.states import OrderSide
from core.exchange.port import Fill


def reduced(order: Order) -> bool:
    """Whether the order reduced (or closed) a position, i.e. realized PnL beyond its fee."""
    held = order.position_before or Decimal(0)
    return held != 0 and (held > 0) == (order.side is OrderSide.SELL)


def realize(
    held: Decimal, entry: Decimal | None, fill: Fill
) -> tuple[Decimal, Decimal, Decimal | None]:
    """PnL a fill realizes against a position, and the position after it.

    Args:
        held: Signed position before the fill (positive long).
        entry: Its entry price.
        fill: The fill.

    Returns:
        ``(realized_pnl_before_fees, held_after, entry_after)``.
    """
    delta = fill.size if fill.side is OrderSide.BUY else -fill.size
    pnl = Decimal(0)
    if held and entry is not None and (held > 0) != (delta > 0):
        closed = min(abs(held), abs(delta))
        direction = 1 if held > 0 else -1
        pnl = (fill.price - entry) * closed * direction
    after = held + delta
    if after == 0:
        return pnl, after, None
    if held == 0 or (held > 0) != (after > 0):
        return pnl, after, fill.price  # opened, or flipped: the rest opened at this price
    if abs(after) > abs(held):
        base = entry if entry is not None else fill.price
        return pnl, after, (base * abs(held) + fill.price * abs(delta)) / abs(after)
    return pnl, after, entry
