"""Erasure of a user's data (/delete_me)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.uow import UnitOfWork


class AccountService:
    """The user's right to be forgotten."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def delete_me(self, user_id: int, *, keep_history: bool) -> None:
        """Delete the trading key, wallet link, webhook and personal data in one transaction.

        With ``keep_history`` the trade history stays (alerts, orders, fills, positions), the
        user is paused and must accept the declaration again to use the bot.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            # Recorded before the erasure so the entry's user link is nulled with the row.
            uow.audit.record("account_deleted", user_id=user_id, keep_history=keep_history)
            await uow.session.flush()
            await uow.users.erase(user_id, keep_history=keep_history)
            await uow.commit()
