"""Personal TradingView webhooks (token and passphrase stored as SHA-256 hashes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Webhook


class WebhookRepository:
    """Access to ``webhooks``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_active(self, user_id: int) -> Webhook | None:
        """The user's live webhook (neither rotated nor revoked), if any."""
        return await self._session.scalar(
            select(Webhook).where(
                Webhook.user_id == user_id,
                Webhook.rotated_at.is_(None),
                Webhook.revoked_at.is_(None),
            )
        )

    async def add(self, webhook: Webhook) -> Webhook:
        """Insert a webhook (flushes, so a second live one fails here, on the unique index)."""
        self._session.add(webhook)
        await self._session.flush()
        return webhook

    async def retire_active(self, user_id: int, *, at: datetime, rotated: bool) -> int:
        """Stop the user's live webhook now, as rotated or as revoked.

        Returns:
            How many webhooks were stopped (0 or 1).
        """
        values = {"rotated_at": at} if rotated else {"revoked_at": at}
        result = await self._session.execute(
            update(Webhook)
            .where(
                Webhook.user_id == user_id,
                Webhook.rotated_at.is_(None),
                Webhook.revoked_at.is_(None),
            )
            .values(**values)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
