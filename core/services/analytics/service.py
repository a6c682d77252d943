"""The analytics use cases: ``/stats``, ``/trades`` and its CSV export, read from the ledger
of the venue the trader uses now (live or paper)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.repositories.analytics import FillRecord, FundingRecord
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.services.analytics.export import history_csv
from core.services.analytics.funding import FundingSync
from core.services.analytics.periods import Period
from core.services.analytics.round_trips import Trade, round_trips
from core.services.analytics.stats import Stats, compute_stats

#: Trades per page of ``/trades``.
TRADES_PER_PAGE = 5


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the analytics read of one trader: the venue and its history."""

    paper: bool
    preferences: Preferences
    fills: list[FillRecord]
    funding: list[FundingRecord]


@dataclass(frozen=True, slots=True)
class StatsReport:
    """``/stats`` for a period and, optionally, one strategy."""

    period: Period
    strategy: str | None
    paper: bool
    stats: Stats


@dataclass(frozen=True, slots=True)
class TradesPage:
    """One page of ``/trades``, newest first.

    Attributes:
        trades: The page's trades.
        page: Its index (0: the newest).
        pages: How many pages there are.
        total: How many trades there are.
        paper: Whether this is the paper ledger.
        preferences: The trader's preferences (timezone for the times shown).
    """

    trades: list[Trade]
    page: int
    pages: int
    total: int
    paper: bool
    preferences: Preferences


@dataclass(frozen=True, slots=True)
class Export:
    """The CSV of the trader's history."""

    filename: str
    data: bytes
    fills: int
    paper: bool


class AnalyticsService:
    """Statistics, trade history and its export.

    Args:
        sessionmaker: Database sessions.
        clock: The current time (UTC-aware).
        funding: Fetches live funding payments from the venue before the ledger is read;
            ``None`` reads what is stored.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
        funding: FundingSync | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._funding = funding

    async def ledger(self, user_id: int) -> Ledger:
        """The trader's fills and funding payments on the venue they use now (live funding
        fetched from the venue first)."""
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            preferences = Preferences.from_json(user.settings)
        paper = preferences.paper
        if not paper and self._funding is not None:
            await self._funding.sync(user_id)
        async with UnitOfWork(self._sessionmaker) as uow:
            fills = await uow.analytics.fills(user_id, paper=paper)
            funding = [] if paper else await uow.analytics.funding(user_id)
        return Ledger(paper=paper, preferences=preferences, fills=fills, funding=funding)

    async def stats(self, user_id: int, period: Period, strategy: str | None = None) -> StatsReport:
        """Statistics of the trades closed in ``period`` (of one strategy label, if given:
        matched without regard to case)."""
        ledger = await self.ledger(user_id)
        since = period.start(self._clock())
        wanted = strategy.casefold() if strategy else None

        def chosen(label: str | None) -> bool:
            return wanted is None or (label or "").casefold() == wanted

        trades = [
            trade
            for trade in round_trips(ledger.fills, ledger.funding).trades
            if trade.closed_at is not None
            and (since is None or trade.closed_at >= since)
            and chosen(trade.strategy)
        ]
        trades.sort(key=lambda trade: (trade.closed_at, trade.opened_at))
        async with UnitOfWork(self._sessionmaker) as uow:
            timings = await uow.analytics.order_timings(user_id, paper=ledger.paper, since=since)
        timings = [timing for timing in timings if chosen(timing.strategy)]
        return StatsReport(
            period=period,
            strategy=strategy,
            paper=ledger.paper,
            stats=compute_stats(trades, timings),
        )

    async def trades(self, user_id: int, page: int = 0) -> TradesPage:
        """A page of the trader's trades, the most recently active first (open ones too)."""
        ledger = await self.ledger(user_id)
        trades = round_trips(ledger.fills, ledger.funding).trades
        trades.sort(key=lambda t: (t.closed_at or t.opened_at, t.opened_at), reverse=True)
        pages = max(1, math.ceil(len(trades) / TRADES_PER_PAGE))
        page = min(max(page, 0), pages - 1)
        start = page * TRADES_PER_PAGE
        return TradesPage(
            trades=trades[start : start + TRADES_PER_PAGE],
            page=page,
            pages=pages,
            total=len(trades),
            paper=ledger.paper,
            preferences=ledger.preferences,
        )

    async def export(self, user_id: int) -> Export:
        """The whole history as CSV: one row per fill and per funding payment."""
        ledger = await self.ledger(user_id)
        stamp = self._clock().strftime("%Y%m%d")
        venue = "paper" if ledger.paper else "live"
        return Export(
            filename=f"tv2dydx-trades-{venue}-{stamp}.csv",
            data=history_csv(ledger.fills, ledger.funding),
            fills=len(ledger.fills),
            paper=ledger.paper,
        )
