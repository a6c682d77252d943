"""The daily digest: at the hour each trader chose, in their timezone, yesterday's P&L with a
small chart, open positions with their protection, and the alerts accepted and rejected.

A worker cron calls :meth:`DigestService.run` every few minutes. A digest is due from the
trader's hour for :data:`CATCH_UP` (so a worker that was down a while still sends it) and
is sent once per trader and local day: its outbox row's ``dedupe_key``
(``digest:<user>:<local date>``) is unique in PostgreSQL, whatever restarts in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import User
from core.db.repositories.analytics import FillRecord, FundingRecord
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.runtime.logs import get_logger
from core.services.analytics.chart import ChartData
from core.services.analytics.funding import FundingSync
from core.services.analytics.pnl_data import daily, ledger_curve, marks, summarize
from core.services.analytics.rendering import ChartRenderer, RendererBusyError
from core.services.analytics.round_trips import ZERO
from core.texts import analytics as analytics_texts
from core.texts import digest as texts

DIGEST_KIND = "daily_digest"
#: How long after the chosen hour a digest not yet sent is still sent.
CATCH_UP = timedelta(hours=3)


def _epoch(times: list[datetime]) -> list[float]:
    return [at.timestamp() for at in times]


class DigestService:
    """Writes due digests to the notifications outbox.

    Args:
        sessionmaker: Database sessions.
        renderer: Draws the chart (off the event loop); ``None`` for text only.
        clock: The current time (UTC-aware).
        funding: Fetches a live trader's funding payments before their digest.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        renderer: ChartRenderer | None,
        clock: Callable[[], datetime] = utcnow,
        funding: FundingSync | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._renderer = renderer
        self._clock = clock
        self._funding = funding
        self._log = get_logger(__name__)

    async def run(self) -> int:
        """Queue every digest due now and not queued yet.

        Returns:
            How many digests were queued.
        """
        now = self._clock()
        async with UnitOfWork(self._sessionmaker) as uow:
            users = await uow.analytics.digest_users()
            for user in users:
                uow.detach(user)
        queued = 0
        for user in users:
            prefs = Preferences.from_json(user.settings)
            if prefs.digest_hour is None:
                continue
            local = now.astimezone(prefs.zone)
            due = datetime.combine(local.date(), time(prefs.digest_hour), tzinfo=prefs.zone)
            if not due <= local < due + CATCH_UP:
                continue
            if await self._digest(user, prefs, local):
                queued += 1
        return queued

    async def _digest(self, user: User, prefs: Preferences, local: datetime) -> bool:
        key = f"digest:{user.id}:{local.date().isoformat()}"
        today = datetime.combine(local.date(), time(0), tzinfo=prefs.zone)
        yesterday = today - timedelta(days=1)
        async with UnitOfWork(self._sessionmaker) as uow:
            if await uow.analytics.notification_exists(key):
                return False
        if not prefs.paper and self._funding is not None:
            await self._funding.sync(user.id)
        async with UnitOfWork(self._sessionmaker) as uow:
            history = await uow.analytics.fills(user.id, paper=prefs.paper, until=today)
            funding = [] if prefs.paper else await uow.analytics.funding(user.id, until=today)
            accepted, rejected = await uow.analytics.alert_counts(user.id, yesterday, today)
            positions = await self._positions(uow, user.id, prefs.paper)
        fills = [fill for fill in history if fill.filled_at >= yesterday]
        paid = [payment for payment in funding if payment.paid_at >= yesterday]
        summary = summarize(fills, paid, unrealized=None, equity=[], base=None)
        text = texts.digest(
            day=yesterday.date(),
            paper=prefs.paper,
            realized=summary.realized,
            fees=summary.fees,
            funding=summary.funding,
            net=summary.net,
            fills=len(fills),
            positions=positions,
            accepted=accepted,
            rejected=rejected,
        )
        chart = await self._chart(key, prefs, history, fills, paid, yesterday, today)
        async with UnitOfWork(self._sessionmaker) as uow:
            added = await uow.notifications.enqueue(
                chat_id=user.notify_chat_id or user.telegram_id,
                kind=DIGEST_KIND,
                text=text,
                user_id=user.id,
                attachment=chart,
                dedupe_key=key,
            )
            await uow.commit()
        if added:
            self._log.info("digest_queued", user_id=user.id, day=str(yesterday.date()))
        return added

    @staticmethod
    async def _positions(uow: UnitOfWork, user_id: int, paper: bool) -> list[texts.PositionLine]:
        lines = []
        for position in await uow.analytics.open_positions(user_id, paper=paper):
            brackets = await uow.brackets.open_in_group(user_id, paper, position.market)
            take = next((b.tp_trigger for b in brackets if b.tp_trigger is not None), None)
            stop = next((b.sl_trigger for b in brackets if b.sl_trigger is not None), None)
            lines.append(
                texts.PositionLine(
                    market=position.market,
                    side=position.side.value if position.side is not None else "",
                    size=abs(position.size),
                    entry=position.entry_price,
                    take_profit=take,
                    stop_loss=stop,
                )
            )
        return lines

    async def _chart(
        self,
        key: str,
        prefs: Preferences,
        history: Sequence[FillRecord],
        fills: Sequence[FillRecord],
        paid: Sequence[FundingRecord],
        yesterday: datetime,
        today: datetime,
    ) -> bytes | None:
        """The day's cumulative P&L with its fills; none without fills or a renderer."""
        if self._renderer is None or not fills:
            return None
        times, values = ledger_curve(fills, paid, start=yesterday, now=today, base=ZERO)
        entries, exits = marks(history, yesterday)
        day_starts, day_values = daily(fills, paid, prefs.zone)
        summary = summarize(fills, paid, unrealized=None, equity=[], base=None)
        data = ChartData(
            title=f"{texts.CHART_TITLE} · {yesterday:%a %d %b}",
            subtitle=analytics_texts.chart_subtitle(summary),
            badge=analytics_texts.chart_badge(prefs.paper),
            timezone=prefs.timezone,
            value_label=analytics_texts.chart_value_label(False),
            times=_epoch(times),
            values=values,
            entry_times=_epoch(entries),
            exit_times=_epoch(exits),
            day_starts=_epoch(day_starts),
            day_values=day_values,
        )
        try:
            return await self._renderer.render(key, data)
        except RendererBusyError:
            return None
