"""The single-use tokens of the Mini App key form."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import KeyEntryRequest
from core.db.repositories.single_use import SingleUseTokenRepository


class KeyEntryRepository(SingleUseTokenRepository[KeyEntryRequest]):
    """Access to ``key_entry_requests`` (tokens stored as SHA-256 hashes only)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, KeyEntryRequest)
