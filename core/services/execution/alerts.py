"""An alert's end when no order decides it: failed, skipped, or finished with its order."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Alert
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.logs import get_logger
from core.services.execution.trader import Trader
from core.texts import trade as texts

NOTIFY_FAILED = "alert_failed"


def finish_alert(uow: UnitOfWork, alert: Alert, state: AlertState, reason: str | None) -> bool:
    """Move an alert still open to its final ``state`` (in the caller's transaction).

    Returns:
        Whether it moved (False: a run had already finished it).
    """
    now = utcnow()
    return uow.alerts.transition(
        alert,
        state,
        started_at=alert.started_at or now,
        reason=reason[:500] if reason else None,
        finished_at=now,
    )


class AlertOutcomes:
    """Finishes alerts that end before (or without) an order.

    Args:
        sessionmaker: Database sessions.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._log = get_logger(__name__)

    async def skip(self, alert_id: int, reason: str) -> None:
        """Nothing to do for the alert (trading paused, already flat...): SKIPPED."""
        async with UnitOfWork(self._sessionmaker) as uow:
            alert = await uow.alerts.get(alert_id)
            if alert is not None:
                finish_alert(uow, alert, AlertState.SKIPPED, reason)
            await uow.commit()

    async def fail(
        self, alert_id: int, trader: Trader, market: str | None, reason: str, *, pause: bool = False
    ) -> None:
        """The alert cannot be executed: FAILED, and the trader is told why.

        Args:
            alert_id: The alert.
            trader: Its trader.
            market: The market it named, for the message.
            reason: Why, in plain words.
            pause: Also pause the trader's trading (the daily loss limit was reached).
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            alert = await uow.alerts.get(alert_id)
            if alert is None:
                return
            finish_alert(uow, alert, AlertState.FAILED, reason)
            await uow.notifications.enqueue(
                chat_id=trader.chat_id,
                user_id=trader.user_id,
                kind=NOTIFY_FAILED,
                text=texts.failed_text(alert.id, alert.strategy, market, reason),
                dedupe_key=f"alert:{alert.id}:failed",
            )
            if pause:
                user = await uow.users.get(trader.user_id)
                if user is not None:
                    user.paused = True
            await uow.commit()
        self._log.info("alert_failed", alert_id=alert_id, reason=reason)
