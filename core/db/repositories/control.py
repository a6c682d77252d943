"""Queries of the trader's controls: the user row to update, an alert's timeline rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Alert, Notification, Order, User
from core.domain.states import NotificationState


class ControlRepository:
    """Reads and row locks for :class:`core.services.control.ControlService`.

    Built over a unit of work's session; it never commits.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_user(self, user_id: int) -> User | None:
        """The user row, locked until the transaction ends (serialises settings edits)."""
        return await self._session.get(User, user_id, with_for_update=True)

    async def users_notified_in(self, chat_id: int) -> Sequence[User]:
        """Users whose notifications go to ``chat_id``, locked."""
        rows = await self._session.scalars(
            select(User).where(User.notify_chat_id == chat_id).with_for_update()
        )
        return rows.all()

    async def reroute_pending(self, user_id: int, from_chat: int, to_chat: int) -> int:
        """Point the user's undelivered notifications for ``from_chat`` at ``to_chat``.

        Returns:
            How many were moved.
        """
        result = await self._session.execute(
            update(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.chat_id == from_chat,
                Notification.state == NotificationState.PENDING,
            )
            .values(chat_id=to_chat)
            .returning(Notification.id)
        )
        return len(result.all())

    async def alert_of_user(self, user_id: int, alert_id: int) -> Alert | None:
        """One of the user's alerts by our id (another user's alert is ``None``)."""
        return await self._session.scalar(
            select(Alert).where(Alert.id == alert_id, Alert.user_id == user_id)
        )

    async def latest_alert_with_external_id(self, user_id: int, external_id: str) -> Alert | None:
        """The user's latest alert carrying TradingView's ``alert_id`` (case-sensitive)."""
        return await self._session.scalar(
            select(Alert)
            .where(Alert.user_id == user_id, Alert.external_id == external_id)
            .order_by(Alert.received_at.desc(), Alert.id.desc())
            .limit(1)
        )

    async def orders_of_alert(self, alert_id: int) -> Sequence[Order]:
        """The orders placed for an alert, in the order they were created."""
        rows = await self._session.scalars(
            select(Order).where(Order.alert_id == alert_id).order_by(Order.id)
        )
        return rows.all()

    async def first_notice_sent(
        self, user_id: int, key_patterns: Sequence[str], since: datetime
    ) -> datetime | None:
        """When the first notification matching one of ``key_patterns`` (SQL ``LIKE`` on the
        dedupe key) reached Telegram, if one did."""
        if not key_patterns:
            return None
        return await self._session.scalar(
            select(func.min(Notification.sent_at)).where(
                Notification.user_id == user_id,
                Notification.created_at >= since,
                Notification.sent_at.is_not(None),
                or_(*(Notification.dedupe_key.like(pattern) for pattern in key_patterns)),
            )
        )
