"""Users."""

from __future__ import annotations

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import (
    Alert,
    Credential,
    Notification,
    User,
    Wallet,
    WalletLinkRequest,
    Webhook,
)


class UserRepository:
    """Access to ``users``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int) -> User | None:
        """A user by primary key."""
        return await self._session.get(User, user_id)

    async def with_alert(
        self, user_id: int, alert_id: int | None
    ) -> tuple[User | None, Alert | None]:
        """A user and one of their alerts (None if not theirs or not given), in one query."""
        if alert_id is None:
            return await self.get(user_id), None
        row = (
            await self._session.execute(
                select(User, Alert)
                .outerjoin(Alert, and_(Alert.id == alert_id, Alert.user_id == User.id))
                .where(User.id == user_id)
            )
        ).first()
        return (row[0], row[1]) if row is not None else (None, None)

    async def get_by_telegram_id(self, telegram_id: int) -> User | None:
        """A user by Telegram id."""
        return await self._session.scalar(select(User).where(User.telegram_id == telegram_id))

    async def get_or_create(
        self, telegram_id: int, *, username: str | None = None, language_code: str | None = None
    ) -> User:
        """The user with this Telegram id, created if new (safe under concurrency)."""
        await self._session.execute(
            insert(User)
            .values(telegram_id=telegram_id, username=username, language_code=language_code)
            .on_conflict_do_nothing(index_elements=[User.telegram_id])
        )
        user = await self.get_by_telegram_id(telegram_id)
        assert user is not None  # inserted above or by a concurrent transaction
        if username is not None and user.username != username:
            user.username = username
        return user

    async def erase(self, user_id: int, *, keep_history: bool) -> None:
        """Delete a user's secrets, links and personal data.

        Args:
            user_id: The user.
            keep_history: Keep alerts, orders, fills and positions (and the Telegram id they
                hang on, so the user sees them on return); otherwise delete the user row and
                everything with it.
        """
        if not keep_history:
            await self._session.execute(delete(User).where(User.id == user_id))
            return
        for model in (Credential, Wallet, WalletLinkRequest, Webhook, Notification):
            await self._session.execute(delete(model).where(model.user_id == user_id))
        await self._session.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                username=None,
                language_code=None,
                declaration_version=None,
                declaration_accepted_at=None,
                settings={},
                notify_chat_id=None,
                compliance_status=None,
                compliance_checked_at=None,
                paused=True,
            )
        )
