"""Which subaccounts need watching, read from the ledger."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.uow import UnitOfWork
from core.exchange.stream import SubaccountRef


class LedgerWatchList:
    """Subaccounts with something open in the ledger.

    Args:
        sessionmaker: Database sessions.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def watched(self) -> frozenset[SubaccountRef]:
        """Live-venue subaccounts with an order whose outcome may still change
        (SUBMITTING, SUBMITTED, UNKNOWN, PARTIALLY_FILLED) or a bracket still at work."""
        # Two reads whose union is wanted: no transaction (two round trips fewer a second).
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            rows = set(await uow.orders.watched_subaccounts())
            rows |= set(await uow.brackets.watched())
        return frozenset(SubaccountRef(owner, number) for owner, number in rows)
