"""Users: registration and lookup for the bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import User
from core.db.uow import UnitOfWork
from core.domain.compliance import DECLARATION


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

    @property
    def declaration_current(self) -> bool:
        """Whether the user accepted the declaration in force."""
        return self.declaration_version == DECLARATION.version

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

    async def accept_declaration(self, user_id: int, version: str) -> UserView:
        """Record acceptance of declaration ``version`` (must be the one in force).

        Raises:
            ValueError: ``version`` is not the declaration in force (a stale button).
        """
        if version != DECLARATION.version:
            raise ValueError("stale declaration")
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            user.declaration_version = version
            user.declaration_accepted_at = utcnow()
            uow.audit.record("declaration_accepted", user_id=user.id, version=version)
            await uow.commit()
            return UserView.of(user)


@dataclass(frozen=True, slots=True)
class SetupStatus:
    """How far a user got with onboarding."""

    declaration: bool
    wallet_address: str | None
    owner_address: str | None
    compliance_status: str | None

    @property
    def complete(self) -> bool:
        """Whether every onboarding step is done."""
        return (
            self.declaration and self.wallet_address is not None and self.owner_address is not None
        )


class SetupService:
    """The onboarding checklist shown by /start."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def status(self, user_id: int) -> SetupStatus:
        """Read every step's state in one transaction."""
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            wallet = await uow.wallets.get_for_user(user_id)
            credential = await uow.credentials.get_for_user(user_id)
            return SetupStatus(
                declaration=user.declaration_version == DECLARATION.version,
                wallet_address=wallet.address if wallet else None,
                owner_address=credential.owner_address if credential else None,
                compliance_status=user.compliance_status,
            )
