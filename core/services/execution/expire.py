"""Alerts past executing: too old when their job ran, or left behind by a run that died."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.logs import get_logger
from core.services.execution.alerts import finish_alert
from core.services.execution.trader import Trader, chat_of
from core.texts import trade as texts

NOTIFY_EXPIRED = "alert_expired"


class AlertExpiry:
    """Expires alerts too old to execute, and tells their traders.

    Args:
        sessionmaker: Database sessions.
        max_lag: Oldest alert still executed (``ALERT_MAX_LAG_SECONDS``).
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, max_lag: timedelta
    ) -> None:
        self._sessionmaker = sessionmaker
        self._max_lag = max_lag
        self._log = get_logger(__name__)

    async def expire(self, alert_id: int, trader: Trader, age: timedelta) -> None:
        """The alert was ``age`` old when its job ran, past ``max_lag``: EXPIRED."""
        async with UnitOfWork(self._sessionmaker) as uow:
            alert = await uow.alerts.get(alert_id)
            if alert is None:
                return
            finish_alert(uow, alert, AlertState.EXPIRED, f"{age.total_seconds():.0f} s old")
            await uow.notifications.enqueue(
                chat_id=trader.chat_id,
                user_id=trader.user_id,
                kind=NOTIFY_EXPIRED,
                text=texts.expired_text(
                    alert.id,
                    alert.strategy,
                    alert.market,
                    age.total_seconds(),
                    int(self._max_lag.total_seconds()),
                ),
                dedupe_key=f"alert:{alert.id}:expired",
            )
            await uow.commit()
        self._log.info("alert_expired", alert_id=alert_id, age_s=round(age.total_seconds(), 1))

    async def expire_stuck(self, *, older_than: timedelta) -> int:
        """Expire alerts no run finished and that are past executing: a run that crashed
        before committing an order, or a job arq gave up on.

        Returns:
            How many alerts were expired.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            count = 0
            for alert in await uow.alerts.lock_unfinished(utcnow() - older_than, 100):
                user = await uow.users.get(alert.user_id)
                finish_alert(uow, alert, AlertState.EXPIRED, texts.NO_ORDER_IN_TIME)
                if user is not None:
                    await uow.notifications.enqueue(
                        chat_id=chat_of(user),
                        user_id=user.id,
                        kind=NOTIFY_EXPIRED,
                        text=texts.expired_text(
                            alert.id,
                            alert.strategy,
                            alert.market,
                            (utcnow() - alert.received_at).total_seconds(),
                            int(self._max_lag.total_seconds()),
                        ),
                        dedupe_key=f"alert:{alert.id}:expired",
                    )
                count += 1
            await uow.commit()
        return count
