"""Users."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import User


class UserRepository:
    """Access to ``users``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int) -> User | None:
        """A user by primary key."""
        return await self._session.get(User, user_id)

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
