"""Unit of work: one session, the repositories over it, one commit owned by the service."""

from __future__ import annotations

from types import TracebackType
from typing import Self
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from core.db.repositories.alerts import AlertRepository
from core.db.repositories.analytics import AnalyticsRepository
from core.db.repositories.audit import AuditRepository
from core.db.repositories.brackets import BracketRepository
from core.db.repositories.credentials import CredentialRepository
from core.db.repositories.key_entries import KeyEntryRepository
from core.db.repositories.notifications import NotificationRepository
from core.db.repositories.orders import (
    FillRepository,
    NonceRepository,
    OrderRepository,
    PositionRepository,
)
from core.db.repositories.paper import PaperRepository
from core.db.repositories.users import UserRepository
from core.db.repositories.wallets import WalletLinkRequestRepository, WalletRepository
from core.db.repositories.webhooks import WebhookRepository

# Per engine, the same pool in autocommit mode: a read needs no transaction of its own.
_AUTOCOMMIT: WeakKeyDictionary[AsyncEngine, AsyncEngine] = WeakKeyDictionary()


class ReadOnlyUnitError(RuntimeError):
    """A read-only unit of work was asked to write or commit."""


class _ReadOnlySession(Session):
    """The session of a read-only unit: its statements autocommit, so it must not write."""


@event.listens_for(_ReadOnlySession, "do_orm_execute")
def _refuse_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyUnitError("a read-only unit of work cannot write")


@event.listens_for(_ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, flush: UOWTransaction, instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyUnitError("a read-only unit of work cannot write")


class UnitOfWork:
    """Groups repository calls into one transaction.

    Usage::

        async with UnitOfWork(sessionmaker) as uow:
            user = await uow.users.get_or_create(telegram_id=42)
            await uow.commit()

    Leaving the block without :meth:`commit` rolls everything back.

    A unit that only reads (``read_only=True``) runs its statements without a transaction
    of its own, each on its own snapshot: no ``BEGIN`` and ``ROLLBACK`` round trips around
    its queries (two of three statements of a one-query read). It may neither write nor
    commit (:class:`ReadOnlyUnitError`); use it
    where each query's answer stands on its own (loading a row, checking a state), not
    where two reads must agree with each other or with a write.

    A unit whose every write is one atomic statement (``autocommit=True``: claim a row by
    ``UPDATE ... RETURNING``, mark it done) may run each statement in a transaction of its
    own in the same way; its caller still calls :meth:`commit` after each write (a no-op
    then, a real commit where the sessionmaker is bound to a connection, as in tests).

    Args:
        sessionmaker: The application's session factory.
        read_only: Whether this unit only reads.
        autocommit: Whether each statement commits on its own.
    """

    session: AsyncSession
    users: UserRepository
    notifications: NotificationRepository
    audit: AuditRepository
    credentials: CredentialRepository
    key_entries: KeyEntryRepository
    wallets: WalletRepository
    wallet_links: WalletLinkRequestRepository
    webhooks: WebhookRepository
    alerts: AlertRepository
    orders: OrderRepository
    brackets: BracketRepository
    fills: FillRepository
    positions: PositionRepository
    nonces: NonceRepository
    paper: PaperRepository
    analytics: AnalyticsRepository

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        read_only: bool = False,
        autocommit: bool = False,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._read_only = read_only
        self._autocommit = autocommit

    async def __aenter__(self) -> Self:
        bind = self._sessionmaker.kw.get("bind")
        if self._read_only and isinstance(bind, AsyncEngine):
            self.session = self._sessionmaker(
                bind=_autocommit(bind), sync_session_class=_ReadOnlySession
            )
        elif self._autocommit and isinstance(bind, AsyncEngine):
            self.session = self._sessionmaker(bind=_autocommit(bind))
        else:
            # Bound to a connection (a test's outer transaction): reads join it as before.
            self.session = self._sessionmaker()
        self.users = UserRepository(self.session)
        self.notifications = NotificationRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.credentials = CredentialRepository(self.session)
        self.key_entries = KeyEntryRepository(self.session)
        self.wallets = WalletRepository(self.session)
        self.wallet_links = WalletLinkRequestRepository(self.session)
        self.webhooks = WebhookRepository(self.session)
        self.alerts = AlertRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.brackets = BracketRepository(self.session)
        self.fills = FillRepository(self.session)
        self.positions = PositionRepository(self.session)
        self.nonces = NonceRepository(self.session)
        self.paper = PaperRepository(self.session)
        self.analytics = AnalyticsRepository(self.session)
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
        """Commit everything done through this unit of work.

        Raises:
            ReadOnlyUnitError: The unit was opened ``read_only``.
        """
        if self._read_only:
            raise ReadOnlyUnitError("a read-only unit of work cannot commit")
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


def _autocommit(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` in autocommit mode (sharing its pool), made once per engine."""
    autocommit = _AUTOCOMMIT.get(engine)
    if autocommit is None:
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        _AUTOCOMMIT[engine] = autocommit
    return autocommit
