"""Users: registration and lookup for the bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import User
from core.db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class UserView:
    """What the edges may know about a user."""

    id: int
    telegram_id: int
    username: str | None
    paused: bool
    declaration_version: str | None
    declaration_accepted_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserView:
        """Project an ORM row."""
        return cls(
            id=user.id,
            telegram_id=user.telegram_id,
            username=user.username,
            paused=user.paused,
            declaration_version=user.declaration_version,
            declaration_accepted_at=user.declaration_accepted_at,
            created_at=user.created_at,
        )


class UserService:
    """Registration of Telegram users."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def register(
        self, telegram_id: int, *, username: str | None, language_code: str | None
    ) -> tuple[UserView, bool]:
        """Find or create the user behind a Telegram account.

        Returns:
            The user and whether it was created now.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            existing = await uow.users.get_by_telegram_id(telegram_id)
            user = await uow.users.get_or_create(
                telegram_id, username=username, language_code=language_code
            )
            created = existing is None
            if created:
                uow.audit.record("user_registered", user_id=user.id)
            await uow.commit()
            return UserView.of(user), created
