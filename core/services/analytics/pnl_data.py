"""What ``/pnl`` shows, computed from the ledger and the venue's equity history: the period's
figures and the chart's series (pure functions)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from core.db.repositories.analytics import FillRecord, FundingRecord
from core.domain.states import OrderSide
from core.exchange.history import EquityPoint
from core.services.analytics.round_trips import ZERO

_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class PnlSummary:
    """The figures of a period.

    Attributes:
        realized: P&L realized by the period's fills before fees and funding.
        fees: Fees paid in the period.
        funding: Funding received (positive) or paid (negative) in the period.
        net: ``realized − fees + funding``.
        unrealized: P&L of the positions open now (``None`` when the venue did not say).
        return_pct: The period's return in percent of the equity at its start, if known.
        fills: Fills in the period.
    """

    realized: Decimal
    fees: Decimal
    funding: Decimal
    net: Decimal
    unrealized: Decimal | None
    return_pct: Decimal | None
    fills: int


@dataclass(frozen=True, slots=True)
class Series:
    """The chart's series (times as UTC datetimes, values in USD)."""

    equity: bool
    times: list[datetime]
    values: list[float]
    entries: list[datetime]
    exits: list[datetime]
    day_starts: list[datetime]
    day_values: list[float]


def summarize(
    fills: Sequence[FillRecord],
    funding: Sequence[FundingRecord],
    *,
    unrealized: Decimal | None,
    equity: Sequence[EquityPoint],
    base: Decimal | None,
) -> PnlSummary:
    """The period's figures.

    Args:
        fills: The period's fills.
        funding: The period's funding payments.
        unrealized: P&L of the open positions now.
        equity: The venue's equity snapshots of the period (oldest first): the return is
            the change of the total P&L over the equity at the start.
        base: Without snapshots, the equity at the start (paper: the balance then).
    """
    fees = sum((fill.fee for fill in fills), ZERO)
    realized = sum((fill.realized_pnl for fill in fills), ZERO) + fees
    paid = sum((payment.payment for payment in funding), ZERO)
    net = realized - fees + paid
    return_pct: Decimal | None = None
    if len(equity) >= 2 and equity[0].equity > 0:
        change = equity[-1].total_pnl - equity[0].total_pnl
        return_pct = change / equity[0].equity * _HUNDRED
    elif base is not None and base > 0:
        return_pct = net / base * _HUNDRED
    return PnlSummary(
        realized=realized,
        fees=fees,
        funding=paid,
        net=net,
        unrealized=unrealized,
        return_pct=return_pct,
        fills=len(fills),
    )


def marks(
    fills: Sequence[FillRecord], since: datetime | None
) -> tuple[list[datetime], list[datetime]]:
    """Times of the fills since ``since`` that opened or added to a position (entries) and
    of those that reduced, closed or flipped one (exits); ``fills`` is the whole history."""
    held: dict[str, Decimal] = defaultdict(Decimal)
    entries: list[datetime] = []
    exits: list[datetime] = []
    for fill in fills:
        delta = fill.size if fill.side is OrderSide.BUY else -fill.size
        before = held[fill.market]
        held[fill.market] = before + delta
        if since is not None and fill.filled_at < since:
            continue
        opening = before == 0 or (before > 0) == (delta > 0)
        (entries if opening else exits).append(fill.filled_at)
    return entries, exits


def daily(
    fills: Sequence[FillRecord], funding: Sequence[FundingRecord], zone: ZoneInfo
) -> tuple[list[datetime], list[float]]:
    """Net realized P&L (fees and funding included) per local day, days in order."""
    days: dict[date, Decimal] = defaultdict(Decimal)
    for fill in fills:
        days[fill.filled_at.astimezone(zone).date()] += fill.realized_pnl
    for payment in funding:
        days[payment.paid_at.astimezone(zone).date()] += payment.payment
    ordered = sorted(days)
    return (
        [datetime.combine(day, time(0), tzinfo=zone) for day in ordered],
        [float(days[day]) for day in ordered],
    )


def ledger_curve(
    fills: Sequence[FillRecord],
    funding: Sequence[FundingRecord],
    *,
    start: datetime,
    now: datetime,
    base: Decimal,
) -> tuple[list[datetime], list[float]]:
    """``base`` plus the cumulative net P&L of the period's fills and funding, as steps."""
    events = sorted(
        [(fill.filled_at, fill.realized_pnl) for fill in fills]
        + [(payment.paid_at, payment.payment) for payment in funding],
        key=lambda event: event[0],
    )
    total = base
    times, values = [start], [float(base)]
    for at, amount in events:
        total += amount
        times.append(at)
        values.append(float(total))
    times.append(max(now, times[-1]))
    values.append(float(total))
    return times, values


def series(
    history: Sequence[FillRecord],
    fills: Sequence[FillRecord],
    funding: Sequence[FundingRecord],
    equity: Sequence[EquityPoint],
    *,
    since: datetime | None,
    now: datetime,
    zone: ZoneInfo,
    base: Decimal,
) -> Series:
    """The chart's series: the venue's equity when it has at least two snapshots in the
    period, else the ledger's cumulative P&L on ``base``."""
    entries, exits = marks(history, since)
    day_starts, day_values = daily(fills, funding, zone)
    if len(equity) >= 2:
        times = [point.at for point in equity]
        values = [float(point.equity) for point in equity]
        if now > times[-1]:
            times.append(now)
            values.append(values[-1])
        is_equity = True
    else:
        first = fills[0].filled_at if fills else now - timedelta(days=1)
        start = since if since is not None else first
        times, values = ledger_curve(fills, funding, start=start, now=now, base=base)
        is_equity = False
    return Series(
        equity=is_equity,
        times=times,
        values=values,
        entries=entries,
        exits=exits,
        day_starts=day_starts,
        day_values=day_values,
    )
