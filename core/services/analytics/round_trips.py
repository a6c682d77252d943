"""Round trips: the ledger's fills grouped into trades, from a flat position back to flat.

A trade starts with the fill that opens a position in a market and ends with the fill that
brings it back to zero. A fill that flips the position closes one trade and opens the next:
its fee is split in proportion to the size on each side. Funding paid or received while a
trade was open belongs to it; funding of positions opened outside the ledger is kept apart.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from core.db.repositories.analytics import FillRecord, FundingRecord
from core.domain.states import OrderSide, PositionSide

ZERO = Decimal(0)


@dataclass(slots=True)
class Trade:
    """One round trip in a market.

    Attributes:
        market: Market ticker.
        side: Long or short.
        opened_at: Time of the opening fill.
        closed_at: Time of the fill that made the position flat; ``None`` while open.
        size: Largest size held during the trade.
        entry_price: Size-weighted price of the fills that opened or added.
        exit_price: Size-weighted price of the fills that reduced or closed.
        fees: Fees paid on the trade's fills (its share of a flipping fill's fee).
        funding: Funding received (positive) or paid (negative) while it was open.
        realized: Realized P&L of its fills, fees deducted, funding excluded.
        alert_id: The alert of the opening fill's order.
        strategy: That alert's ``strategy`` label.
        fill_ids: The ledger ids of its fills.
    """

    market: str
    side: PositionSide
    opened_at: datetime
    closed_at: datetime | None = None
    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    exit_price: Decimal | None = None
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    realized: Decimal = ZERO
    alert_id: int | None = None
    strategy: str | None = None
    fill_ids: list[int] = field(default_factory=list)
    _opened: Decimal = ZERO
    _closed: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """What the trade earned: realized P&L (fees deducted) plus funding."""
        return self.realized + self.funding

    @property
    def is_open(self) -> bool:
        """Whether the position is still held."""
        return self.closed_at is None

    def _open(self, size: Decimal, price: Decimal) -> None:
        self.entry_price = (self.entry_price * self._opened + price * size) / (self._opened + size)
        self._opened += size

    def _close(self, size: Decimal, price: Decimal) -> None:
        before = self.exit_price or ZERO
        self.exit_price = (before * self._closed + price * size) / (self._closed + size)
        self._closed += size


@dataclass(frozen=True, slots=True)
class RoundTrips:
    """Every trade of a ledger, oldest first, and the funding no trade of ours held."""

    trades: list[Trade]
    unattributed_funding: Decimal


def _signed(fill: FillRecord) -> Decimal:
    return fill.size if fill.side is OrderSide.BUY else -fill.size


def _start(fill: FillRecord, size: Decimal) -> Trade:
    side = PositionSide.LONG if fill.side is OrderSide.BUY else PositionSide.SHORT
    return Trade(
        market=fill.market,
        side=side,
        opened_at=fill.filled_at,
        alert_id=fill.alert_id,
        strategy=fill.strategy,
        size=size,
    )


def _apply(
    trade: Trade | None, held: Decimal, fill: FillRecord
) -> tuple[list[Trade], Trade | None, Decimal]:
    """Apply one fill to a market's open trade.

    Returns:
        The trades the fill started, the market's open trade after it (``None`` when flat)
        and the signed position after it.
    """
    delta = _signed(fill)
    after = held + delta
    if trade is None or held == 0 or (held > 0) == (delta > 0):
        started = [] if trade is not None and held != 0 else [_start(fill, ZERO)]
        current = started[0] if started else trade
        assert current is not None
        current._open(fill.size, fill.price)
        current.fees += fill.fee
        current.realized += fill.realized_pnl
        current.size = max(current.size, abs(after))
        current.fill_ids.append(fill.fill_id)
        return started, current, after
    closing = min(abs(held), fill.size)
    fee = fill.fee * closing / fill.size
    trade._close(closing, fill.price)
    trade.fees += fee
    # The opening rest of a flip realizes nothing but its fee: the gross P&L is the close's.
    trade.realized += fill.realized_pnl + fill.fee - fee
    trade.fill_ids.append(fill.fill_id)
    if after != 0 and (held > 0) == (after > 0):
        return [], trade, after
    trade.closed_at = fill.filled_at
    if after == 0:
        return [], None, after
    opened = _start(fill, abs(after))
    opened._open(fill.size - closing, fill.price)
    opened.fees = fill.fee - fee
    opened.realized = -(fill.fee - fee)
    opened.fill_ids.append(fill.fill_id)
    return [opened], opened, after


def round_trips(fills: Iterable[FillRecord], funding: Iterable[FundingRecord]) -> RoundTrips:
    """Group fills (oldest first) into trades and give each the funding of its time.

    Args:
        fills: The ledger's fills, oldest first.
        funding: Funding payments, in any order.
    """
    trades: list[Trade] = []
    by_market: dict[str, list[Trade]] = {}
    open_trade: dict[str, Trade] = {}
    held: dict[str, Decimal] = {}
    for fill in fills:
        started, current, after = _apply(
            open_trade.get(fill.market), held.get(fill.market, ZERO), fill
        )
        held[fill.market] = after
        trades += started
        by_market.setdefault(fill.market, []).extend(started)
        if current is None:
            open_trade.pop(fill.market, None)
        else:
            open_trade[fill.market] = current
    unattributed = ZERO
    opens = {market: [t.opened_at for t in items] for market, items in by_market.items()}
    for payment in funding:
        items = by_market.get(payment.market, [])
        index = bisect_right(opens.get(payment.market, []), payment.paid_at) - 1
        holder = items[index] if index >= 0 else None
        if holder is not None and (holder.closed_at is None or payment.paid_at <= holder.closed_at):
            holder.funding += payment.payment
        else:
            unattributed += payment.payment
    return RoundTrips(trades=trades, unattributed_funding=unattributed)
