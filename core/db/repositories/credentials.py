"""Encrypted dYdX API trading keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Credential


class CredentialRepository:
    """Access to ``credentials``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_for_user(self, user_id: int) -> Credential | None:
        """The user's active credential, if any."""
        return await self._session.scalar(select(Credential).where(Credential.user_id == user_id))

    async def lock_batch_not_under(self, key_id: str, limit: int) -> Sequence[Credential]:
        """Lock up to ``limit`` rows sealed under another key than ``key_id``."""
        rows = await self._session.scalars(
            select(Credential)
            .where(Credential.key_id != key_id)
            .order_by(Credential.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return rows.all()

    async def count_by_key(self) -> dict[str, int]:
        """How many credentials each key id seals."""
        rows = await self._session.execute(
            select(Credential.key_id, func.count()).group_by(Credential.key_id)
        )
        return {key_id: count for key_id, count in rows.tuples()}
