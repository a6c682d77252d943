"""Single-use token requests: a secret link or form handed to one user (only the token's
SHA-256 stored), valid until it expires and used at most once.

The wallet link (``wallet_link_requests``) and the Mini App key form
(``key_entry_requests``) keep their tokens this way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import KeyEntryRequest, WalletLinkRequest

TokenRequest = TypeVar("TokenRequest", WalletLinkRequest, KeyEntryRequest)


class SingleUseTokenRepository(Generic[TokenRequest]):
    """Access to one table of single-use token requests.

    Args:
        session: The unit of work's session.
        model: The request model (:class:`~core.db.models.WalletLinkRequest` or
            :class:`~core.db.models.KeyEntryRequest`).
    """

    def __init__(self, session: AsyncSession, model: type[TokenRequest]) -> None:
        self._session = session
        self._model: type[TokenRequest] = model

    async def issue(
        self, *, user_id: int, token_hash: str, issued_at: datetime, expires_at: datetime
    ) -> tuple[TokenRequest, int]:
        """Drop the user's requests not used yet, so only the newest one works, and add a
        new one to the current transaction (flushed, so it has its id).

        Returns:
            The new request and how many unused ones were dropped.
        """
        model = self._model
        result = await self._session.execute(
            delete(model)
            .where(model.user_id == user_id, model.used_at.is_(None))
            .returning(model.id)
        )
        dropped = len(result.all())
        request = model(
            user_id=user_id, token_hash=token_hash, issued_at=issued_at, expires_at=expires_at
        )
        self._session.add(request)
        await self._session.flush()
        return request, dropped

    async def get(self, token_hash: str) -> TokenRequest | None:
        """A request by the hash of its token."""
        return await self._session.scalar(
            select(self._model).where(self._model.token_hash == token_hash)
        )

    async def consume(
        self, request_id: int, *, now: datetime, condition: ColumnElement[bool] | None = None
    ) -> bool:
        """Mark the request used if it still is unused and unexpired (and meets
        ``condition``, when given).

        One conditional UPDATE, so of two concurrent uses exactly one wins.

        Returns:
            Whether this call consumed it.
        """
        model = self._model
        conditions = [model.id == request_id, model.used_at.is_(None), model.expires_at > now]
        if condition is not None:
            conditions.append(condition)
        consumed = await self._session.scalar(
            update(model).where(*conditions).values(used_at=now).returning(model.id)
        )
        return consumed is not None
