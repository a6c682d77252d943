"""The single-use tokens of the Mini App key form."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import KeyEntryRequest


class KeyEntryRepository:
    """Access to ``key_entry_requests`` (tokens stored as SHA-256 hashes only)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(
        self, *, user_id: int, token_hash: str, issued_at: datetime, expires_at: datetime
    ) -> KeyEntryRequest:
        """Add a form request to the current transaction."""
        request = KeyEntryRequest(
            user_id=user_id, token_hash=token_hash, issued_at=issued_at, expires_at=expires_at
        )
        self._session.add(request)
        return request

    async def delete_unused(self, user_id: int) -> int:
        """Drop the user's forms not used yet, so only the newest one works.

        Returns:
            How many were dropped.
        """
        result = await self._session.execute(
            delete(KeyEntryRequest)
            .where(KeyEntryRequest.user_id == user_id, KeyEntryRequest.used_at.is_(None))
            .returning(KeyEntryRequest.id)
        )
        return len(result.all())

    async def get(self, token_hash: str) -> KeyEntryRequest | None:
        """A form request by the hash of its token."""
        return await self._session.scalar(
            select(KeyEntryRequest).where(KeyEntryRequest.token_hash == token_hash)
        )

    async def consume(self, request_id: int, *, now: datetime) -> bool:
        """Mark the request used if it still is unused and unexpired.

        One conditional UPDATE, so of two concurrent submissions exactly one wins.

        Returns:
            Whether this call consumed it.
        """
        consumed = await self._session.scalar(
            update(KeyEntryRequest)
            .where(
                KeyEntryRequest.id == request_id,
                KeyEntryRequest.used_at.is_(None),
                KeyEntryRequest.expires_at > now,
            )
            .values(used_at=now)
            .returning(KeyEntryRequest.id)
        )
        return consumed is not None
