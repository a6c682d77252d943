"""Linked wallets and the one-time wallet-link requests that prove them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Wallet, WalletLinkRequest
from core.db.repositories.single_use import SingleUseTokenRepository


class WalletRepository:
    """Access to ``wallets``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_for_user(self, user_id: int) -> Wallet | None:
        """The user's linked wallet, if any."""
        return await self._session.scalar(select(Wallet).where(Wallet.user_id == user_id))

    async def get_by_address(self, address: str) -> Wallet | None:
        """The wallet row of a lower-case address, if linked to anyone."""
        return await self._session.scalar(select(Wallet).where(Wallet.address == address))

    async def add(
        self, *, user_id: int, address: str, chain_id: int, linked_at: datetime
    ) -> Wallet | None:
        """Link ``address`` (lower-case) to the user.

        Either UNIQUE constraint (one wallet per user, one user per address) turns the insert
        into a no-op instead of an error, so the transaction stays usable.

        Returns:
            The new row, or ``None`` when the user or the address is already linked.
        """
        wallet_id = await self._session.scalar(
            insert(Wallet)
            .values(user_id=user_id, address=address, chain_id=chain_id, linked_at=linked_at)
            .on_conflict_do_nothing()
            .returning(Wallet.id)
        )
        if wallet_id is None:
            return None
        return await self._session.get(Wallet, wallet_id)

    async def delete_for_user(self, user_id: int) -> Wallet | None:
        """Remove the user's wallet link.

        Returns:
            The removed row, or ``None`` when there was none.
        """
        wallet = await self.get_for_user(user_id)
        if wallet is None:
            return None
        await self._session.delete(wallet)
        await self._session.flush()
        return wallet


class WalletLinkRequestRepository(SingleUseTokenRepository[WalletLinkRequest]):
    """Access to ``wallet_link_requests``: one-time link tokens (only their hash) and the
    EIP-4361 nonce of the latest message written for each."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, WalletLinkRequest)

    async def consume_with_nonce(self, request_id: int, *, nonce: str, now: datetime) -> bool:
        """Mark the request used if it still is unused, unexpired and holds ``nonce``.

        One conditional UPDATE, so of two concurrent verifications exactly one wins.

        Returns:
            Whether this call consumed it.
        """
        return await self.consume(request_id, now=now, condition=WalletLinkRequest.nonce == nonce)
