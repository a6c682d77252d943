"""Unit of work: one session, the repositories over it, one commit owned by the service."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.repositories.alerts import AlertRepository
from core.db.repositories.audit import AuditRepository
from core.db.repositories.brackets import BracketRepository
from core.db.repositories.credentials import CredentialRepository
from core.db.repositories.notifications import NotificationRepository
from core.db.repositories.orders import (
    FillRepository,
    NonceRepository,
    OrderRepository,
    PositionRepository,
)
from core.db.repositories.paper import PaperRepository
from core.db.repositories.users import UserRepository
from core.db.repositories.wallets import WalletRepository
from core.db.repositories.webhooks import WebhookRepository


class UnitOfWork:
    """Groups repository calls into one transaction.

    Usage::

        async with UnitOfWork(sessionmaker) as uow:
            user = await uow.users.get_or_create(telegram_id=42)
            await uow.commit()

    Leaving the block without :meth:`commit` rolls everything back.
    """

    session: AsyncSession
    users: UserRepository
    notifications: NotificationRepository
    audit: AuditRepository
    credentials: CredentialRepository
    wallets: WalletRepository
    webhooks: WebhookRepository
    alerts: AlertRepository
    orders: OrderRepository
    brackets: BracketRepository
    fills: FillRepository
    positions: PositionRepository
    nonces: NonceRepository
    paper: PaperRepository

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def __aenter__(self) -> Self:
        self.session = self._sessionmaker()
        self.users = UserRepository(self.session)
        self.notifications = NotificationRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.credentials = CredentialRepository(self.session)
        self.wallets = WalletRepository(self.session)
        self.webhooks = WebhookRepository(self.session)
        self.alerts = AlertRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.brackets = BracketRepository(self.session)
        self.fills = FillRepository(self.session)
        self.positions = PositionRepository(self.session)
        self.nonces = NonceRepository(self.session)
        self.paper = PaperRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        """Commit everything done through this unit of work."""
        await self.session.commit()

    def detach(self, *objects: object) -> None:
        """Keep loaded objects readable after the unit of work ends (leaving it rolls back,
        which would otherwise expire them)."""
        for obj in objects:
            if obj is not None:
                self.session.expunge(obj)

    async def rollback(self) -> None:
        """Discard everything not yet committed."""
        await self.session.rollback()
