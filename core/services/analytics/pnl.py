"""``/pnl``: the period's figures and the chart, rendered off the event loop and cached
until a new fill (or the next hour, as the window moves)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.repositories.analytics import FillRecord
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.exchange.errors import ExchangeError
from core.exchange.history import AccountHistory, EquityPoint
from core.exchange.provider import ExchangeProvider, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.analytics.chart import ChartData
from core.services.analytics.periods import Period
from core.services.analytics.pnl_data import PnlSummary, Series, series, summarize
from core.services.analytics.rendering import ChartRenderer
from core.services.analytics.round_trips import ZERO
from core.services.analytics.service import AnalyticsService, Ledger
from core.texts import analytics as texts


@dataclass(frozen=True, slots=True)
class PnlView:
    """What ``/pnl`` answers: nothing to chart yet, or the figures and the PNG."""

    period: Period
    paper: bool
    summary: PnlSummary | None
    png: bytes | None

    @property
    def empty(self) -> bool:
        """Whether the trader has no trade to chart at all."""
        return self.summary is None


def _epoch(times: list[datetime]) -> list[float]:
    return [at.timestamp() for at in times]


def chart_data(
    view_period: Period, paper: bool, summary: PnlSummary, s: Series, zone: str
) -> ChartData:
    """The renderer's input (plain floats, cheap to send to another process)."""
    return ChartData(
        title=texts.chart_title(view_period),
        subtitle=texts.chart_subtitle(summary),
        badge=texts.chart_badge(paper),
        timezone=zone,
        value_label=texts.chart_value_label(s.equity),
        times=_epoch(s.times),
        values=s.values,
        entry_times=_epoch(s.entries),
        exit_times=_epoch(s.exits),
        day_starts=_epoch(s.day_starts),
        day_values=s.day_values,
    )


class PnlService:
    """The P&L chart and figures of a period.

    Args:
        sessionmaker: Database sessions.
        analytics: Reads the trader's ledger.
        renderer: The chart renderer (process pool and cache).
        exchanges: The venues, for the open positions' unrealized P&L.
        history: The venue's account history (equity snapshots); ``None`` to chart the
            ledger only.
        clock: The current time (UTC-aware).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        analytics: AnalyticsService,
        renderer: ChartRenderer,
        exchanges: ExchangeProvider | None,
        history: AccountHistory | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._analytics = analytics
        self._renderer = renderer
        self._exchanges = exchanges
        self._history = history
        self._clock = clock
        self._log = get_logger(__name__)

    async def _unrealized(self, user_id: int, preferences: Preferences) -> Decimal | None:
        if self._exchanges is None:
            return None
        try:
            exchange = await self._exchanges.for_user(user_id, preferences)
            positions = await exchange.positions()
        except (TradingNotReadyError, ExchangeError) as exc:
            self._log.info("pnl_unrealized_unavailable", user_id=user_id, error=type(exc).__name__)
            return None
        return sum((position.unrealized_pnl for position in positions), ZERO)

    async def _equity(self, user_id: int, since: datetime | None) -> list[EquityPoint]:
        if self._history is None:
            return []
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            if credential is None:
                return []
            owner, number = credential.owner_address, credential.subaccount_number
        try:
            return await self._history.equity(owner, number, since)
        except ExchangeError as exc:
            self._log.info("pnl_equity_unavailable", user_id=user_id, error=type(exc).__name__)
            return []

    async def _paper_balance(self, user_id: int) -> Decimal | None:
        async with UnitOfWork(self._sessionmaker) as uow:
            account = await uow.paper.get_account(user_id)
            return None if account is None else account.balance

    async def pnl(self, user_id: int, period: Period) -> PnlView:
        """The figures and the chart of ``period`` on the venue the trader uses now.

        Raises:
            RendererBusyError: Too many charts are waiting to be drawn.
        """
        ledger = await self._analytics.ledger(user_id)
        if not ledger.fills:
            return PnlView(period=period, paper=ledger.paper, summary=None, png=None)
        now = self._clock()
        since = period.start(now)
        fills = [f for f in ledger.fills if since is None or f.filled_at >= since]
        funding = [p for p in ledger.funding if since is None or p.paid_at >= since]
        equity = [] if ledger.paper else await self._equity(user_id, since)
        base = await self._base(user_id, ledger, fills)
        summary = summarize(
            fills,
            funding,
            unrealized=await self._unrealized(user_id, ledger.preferences),
            equity=equity,
            base=base,
        )
        zone = ledger.preferences.zone
        drawn = series(
            ledger.fills, fills, funding, equity, since=since, now=now, zone=zone, base=base or ZERO
        )
        key = (
            user_id,
            ledger.paper,
            period,
            ledger.fills[-1].fill_id,
            len(ledger.funding),
            len(equity),
            now.strftime("%Y%m%d%H"),
            ledger.preferences.timezone,
        )
        data = chart_data(period, ledger.paper, summary, drawn, ledger.preferences.timezone)
        png = await self._renderer.render(key, data)
        return PnlView(period=period, paper=ledger.paper, summary=summary, png=png)

    async def _base(
        self, user_id: int, ledger: Ledger, fills: Sequence[FillRecord]
    ) -> Decimal | None:
        """Paper: the balance at the period's start (now, less what the period realized)."""
        if not ledger.paper:
            return None
        balance = await self._paper_balance(user_id)
        if balance is None:
            return None
        return balance - sum((fill.realized_pnl for fill in fills), ZERO)
