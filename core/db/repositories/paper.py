"""The paper-trading ledger: virtual balances, simulated orders, fills and positions."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import PaperAccount, PaperFill, PaperOrder, PaperPosition

#: Statuses of a paper order that may still fill (the ``ix_paper_orders_live`` index).
LIVE_STATUSES = ("OPEN", "UNTRIGGERED")


class PaperRepository:
    """Access to ``paper_accounts``, ``paper_orders``, ``paper_fills`` and ``paper_positions``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_account(self, user_id: int, starting_balance: Decimal) -> PaperAccount:
        """The user's paper account, created with ``starting_balance`` if new, row-locked.

        The lock (``SELECT … FOR UPDATE``) serializes every write to one user's paper venue
        until the transaction ends.
        """
        await self._session.execute(
            insert(PaperAccount)
            .values(user_id=user_id, balance=starting_balance)
            .on_conflict_do_nothing(index_elements=[PaperAccount.user_id])
        )
        account = await self._session.scalar(
            select(PaperAccount)
            .where(PaperAccount.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert account is not None  # inserted above or by a concurrent transaction
        return account

    async def get_account(self, user_id: int) -> PaperAccount | None:
        """The user's paper account without locking it (None before first use)."""
        return await self._session.get(PaperAccount, user_id)

    async def positions(self, user_id: int) -> list[PaperPosition]:
        """Every position row of the user (closed ones have size 0), by market."""
        rows = await self._session.scalars(
            select(PaperPosition)
            .where(PaperPosition.user_id == user_id)
            .order_by(PaperPosition.market)
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def delete_positions(self, user_id: int) -> None:
        """Remove every position of the user (a reset)."""
        await self._session.execute(delete(PaperPosition).where(PaperPosition.user_id == user_id))

    async def order_by_tx_hash(self, tx_hash: str) -> PaperOrder | None:
        """The order a transaction created, if it was broadcast before."""
        return await self._session.scalar(select(PaperOrder).where(PaperOrder.tx_hash == tx_hash))

    async def find_order(
        self, user_id: int, market: str, client_id: int, flags: int
    ) -> PaperOrder | None:
        """The user's order with this id (client id, flags, market), in any status."""
        return await self._session.scalar(
            select(PaperOrder)
            .where(
                PaperOrder.user_id == user_id,
                PaperOrder.market == market,
                PaperOrder.client_id == client_id,
                PaperOrder.order_flags == flags,
            )
            .execution_options(populate_existing=True)
        )

    async def live_orders(self, user_id: int, market: str | None = None) -> list[PaperOrder]:
        """The user's open and untriggered orders, oldest first."""
        query = select(PaperOrder).where(
            PaperOrder.user_id == user_id, PaperOrder.status.in_(LIVE_STATUSES)
        )
        if market is not None:
            query = query.where(PaperOrder.market == market)
        rows = await self._session.scalars(
            query.order_by(PaperOrder.id).execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def fills(self, user_id: int, market: str | None, limit: int) -> Sequence[PaperFill]:
        """The user's latest fills, newest first."""
        query = select(PaperFill).where(PaperFill.user_id == user_id)
        if market is not None:
            query = query.where(PaperFill.market == market)
        rows = await self._session.scalars(
            query.order_by(PaperFill.created_at.desc(), PaperFill.id.desc()).limit(limit)
        )
        return rows.all()

    async def users_with_live_orders(self) -> list[int]:
        """Ids of the users who have at least one open or untriggered paper order."""
        rows = await self._session.scalars(
            select(PaperOrder.user_id)
            .where(PaperOrder.status.in_(LIVE_STATUSES))
            .distinct()
            .order_by(PaperOrder.user_id)
        )
        return list(rows.all())

    def add(self, row: PaperOrder | PaperFill | PaperPosition) -> None:
        """Stage a new row (flushed by the caller or at commit)."""
        self._session.add(row)

    async def flush(self) -> None:
        """Send staged changes (the service's sessions do not autoflush)."""
        await self._session.flush()
