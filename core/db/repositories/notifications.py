"""Notifications outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Notification
from core.domain.states import NotificationState


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

    async def due_ids(self, now: datetime, limit: int) -> list[int]:
        """Ids of up to ``limit`` messages due at ``now``, oldest first (not locked)."""
        rows = await self._session.scalars(
            select(Notification.id)
            .where(
                Notification.state == NotificationState.PENDING,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        return list(rows)

    async def claim(self, notification_id: int, now: datetime) -> Notification | None:
        """Lock one message if it is still due; None if sent meanwhile or locked by another
        worker (which skips it in turn)."""
        return await self._session.scalar(
            select(Notification)
            .where(
                Notification.id == notification_id,
                Notification.state == NotificationState.PENDING,
                Notification.next_attempt_at <= now,
            )
            .with_for_update(skip_locked=True)
        )
