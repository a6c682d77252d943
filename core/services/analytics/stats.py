"""Trading statistics of closed round trips, and execution quality of alert-driven orders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from statistics import median

from core.db.repositories.analytics import OrderTiming
from core.domain.states import OrderSide
from core.services.analytics.round_trips import ZERO, Trade

#: Label of trades whose alert carried no ``strategy`` (or that no alert opened).
NO_STRATEGY = "—"
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Closed trades of one market or one strategy."""

    name: str
    trades: int
    wins: int
    net: Decimal

    @property
    def win_rate(self) -> Decimal:
        """Share of winning trades, in percent."""
        return Decimal(100) * self.wins / self.trades if self.trades else ZERO


@dataclass(frozen=True, slots=True)
class Stats:
    """Statistics of closed trades.

    Attributes:
        trades: Closed trades.
        wins: Trades that earned more than nothing (net of fees and funding).
        losses: Trades that lost.
        win_rate: ``wins / trades`` in percent; ``None`` without trades.
        profit_factor: Gross wins over gross losses; ``None`` without a loss.
        average_win: Mean net of the winning trades.
        average_loss: Mean net of the losing trades (negative).
        expectancy: Mean net per trade.
        max_drawdown: Deepest fall of the cumulative net from its peak (positive USD).
        best: The trade with the highest net.
        worst: The trade with the lowest net.
        fees: Fees paid on the trades.
        funding: Funding received (positive) or paid (negative) on the trades.
        net: Net of every trade: realized P&L after fees, plus funding.
        median_latency: Median time from an alert's arrival to its order's broadcast.
        median_slippage_bps: Median fill price against the alert's price, in basis points
            (positive: worse than the alert's price).
        markets: Per market, best net first.
        strategies: Per strategy label, best net first.
    """

    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    expectancy: Decimal | None
    max_drawdown: Decimal
    best: Trade | None
    worst: Trade | None
    fees: Decimal
    funding: Decimal
    net: Decimal
    median_latency: timedelta | None
    median_slippage_bps: Decimal | None
    markets: list[Breakdown]
    strategies: list[Breakdown]


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, ZERO) / len(values) if values else None


def _median_time(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return ordered[middle - 1] + (ordered[middle] - ordered[middle - 1]) / 2


def max_drawdown(nets: Iterable[Decimal]) -> Decimal:
    """Deepest fall of a running total from its highest point (starting at zero)."""
    total = peak = deepest = ZERO
    for value in nets:
        total += value
        peak = max(peak, total)
        deepest = max(deepest, peak - total)
    return deepest


def _breakdown(trades: Sequence[Trade], key: str) -> list[Breakdown]:
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        name = getattr(trade, key) or NO_STRATEGY
        groups.setdefault(name, []).append(trade)
    rows = [
        Breakdown(
            name=name,
            trades=len(items),
            wins=sum(1 for t in items if t.net > 0),
            net=sum((t.net for t in items), ZERO),
        )
        for name, items in groups.items()
    ]
    return sorted(rows, key=lambda row: (-row.net, row.name))


def slippage_bps(timing: OrderTiming) -> Decimal | None:
    """How much worse than the alert's price an order filled, in basis points."""
    if not timing.reference_price or timing.average_price is None:
        return None
    moved = (timing.average_price - timing.reference_price) / timing.reference_price * _BPS
    return moved if timing.side is OrderSide.BUY else -moved


def compute_stats(trades: Sequence[Trade], timings: Sequence[OrderTiming]) -> Stats:
    """Statistics of closed trades and the execution quality of the orders given.

    Args:
        trades: Closed trades, in the order they closed.
        timings: Alert-driven orders of the same period (and strategy, if one was chosen).
    """
    nets = [trade.net for trade in trades]
    wins = [net for net in nets if net > 0]
    losses = [net for net in nets if net < 0]
    gross_loss = -sum(losses, ZERO)
    latencies = [t.submitted_at - t.received_at for t in timings if t.submitted_at is not None]
    slippages = [bps for bps in map(slippage_bps, timings) if bps is not None]
    return Stats(
        trades=len(trades),
        wins=len(wins),
        losses=len(losses),
        win_rate=Decimal(100) * len(wins) / len(trades) if trades else None,
        profit_factor=sum(wins, ZERO) / gross_loss if gross_loss else None,
        average_win=_mean(wins),
        average_loss=_mean(losses),
        expectancy=_mean(nets),
        max_drawdown=max_drawdown(nets),
        best=max(trades, key=lambda t: t.net) if trades else None,
        worst=min(trades, key=lambda t: t.net) if trades else None,
        fees=sum((t.fees for t in trades), ZERO),
        funding=sum((t.funding for t in trades), ZERO),
        net=sum(nets, ZERO),
        median_latency=_median_time(latencies),
        median_slippage_bps=median(slippages) if slippages else None,
        markets=_breakdown(trades, "market"),
        strategies=_breakdown(trades, "strategy"),
    )
