"""Notifications outbox."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Notification
from core.domain.states import NotificationState


class ClaimedNotification(NamedTuple):
    """A message claimed for sending (see :meth:`NotificationRepository.claim_due`)."""

    id: int
    chat_id: int
    text: str
    attachment: bytes | None
    attempts: int
    created_at: datetime


class NotificationRepository:
    """Access to ``notifications`` (the Telegram outbox)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def enqueue(
        self,
        *,
        chat_id: int,
        kind: str,
        text: str,
        user_id: int | None = None,
        attachment: bytes | None = None,
        dedupe_key: str | None = None,
    ) -> bool:
        """Add a message to the outbox; a repeated ``dedupe_key`` is ignored.

        Returns:
            Whether a new message was added.
        """
        result = await self._session.execute(
            insert(Notification)
            .values(
                user_id=user_id,
                chat_id=chat_id,
                kind=kind,
                text=text,
                attachment=attachment,
                dedupe_key=dedupe_key,
                state=NotificationState.PENDING,
            )
            .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
            .returning(Notification.id)
        )
        return result.scalar_one_or_none() is not None

    async def retry_now(self, now: datetime) -> None:
        """Make every message waiting out a back-off due at ``now``."""
        await self._session.execute(
            update(Notification)
            .where(
                Notification.state == NotificationState.PENDING,
                Notification.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedNotification]:
        """Claim up to ``limit`` messages due at ``now``, oldest first, in one statement: each
        counts an attempt and is held until ``lease_until`` (others skip it meanwhile; one
        whose sender died is due again then)."""
        due = (
            select(Notification.id)
            .where(
                Notification.state == NotificationState.PENDING,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = await self._session.execute(
            update(Notification)
            .where(Notification.id.in_(due.scalar_subquery()))
            .values(attempts=Notification.attempts + 1, next_attempt_at=lease_until)
            .returning(
                Notification.id,
                Notification.chat_id,
                Notification.text,
                Notification.attachment,
                Notification.attempts,
                Notification.created_at,
            )
            .execution_options(synchronize_session=False)
        )
        claimed = [ClaimedNotification(*row) for row in rows.all()]
        return sorted(claimed, key=lambda message: message.id)

    async def mark(self, notification_id: int, **values: object) -> None:
        """Record what became of a claimed message (sent, failed, or when to retry)."""
        await self._session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.state == NotificationState.PENDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def release(self, notification_ids: list[int], now: datetime) -> None:
        """Hand back claimed messages that were not tried (due now, the attempt uncounted)."""
        if notification_ids:
            await self._session.execute(
                update(Notification)
                .where(
                    Notification.id.in_(notification_ids),
                    Notification.state == NotificationState.PENDING,
                )
                .values(attempts=Notification.attempts - 1, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
