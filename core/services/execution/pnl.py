"""Realized P&L: what each fill realizes against the position it met."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from core.domain.states import OrderSide
from core.exchange.port import Fill


class _Reducing(Protocol):
    @property
    def position_before(self) -> Decimal | None: ...
    @property
    def side(self) -> OrderSide: ...


def reduced(order: _Reducing) -> bool:
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


@dataclass(slots=True)
class Realized:
    """An order's fills in the order they happened, each with the P&L it realized after its
    fee, and the order's totals."""

    fills: list[tuple[Fill, Decimal]] = field(default_factory=list)
    size: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    pnl: Decimal = Decimal(0)

    @property
    def average_price(self) -> Decimal | None:
        """Size-weighted fill price (None when nothing filled)."""
        return self.cost / self.size if self.size else None


def realize_all(held: Decimal | None, entry: Decimal | None, fills: list[Fill]) -> Realized:
    """What ``fills`` of one order realized against the position it met (``held`` signed,
    positive long, at ``entry``), fees included, oldest fill first."""
    position = held or Decimal(0)
    done = Realized()
    for fill in sorted(fills, key=lambda f: (f.created_at, f.fill_id)):
        pnl, position, entry = realize(position, entry, fill)
        pnl -= fill.fee
        done.fills.append((fill, pnl))
        done.size += fill.size
        done.cost += fill.size * fill.price
        done.fee += fill.fee
        done.pnl += pnl
    return done
