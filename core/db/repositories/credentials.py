"""Encrypted dYdX API trading keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Credential, User


class CredentialRepository:
    """Access to ``credentials``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_for_user(self, user_id: int) -> Credential | None:
        """The user's active credential, if any."""
        return await self._session.scalar(select(Credential).where(Credential.user_id == user_id))

    async def get_by_owner(self, owner_address: str, subaccount_number: int) -> Credential | None:
        """The credential trading this subaccount, whoever it belongs to."""
        return await self._session.scalar(
            select(Credential).where(
                Credential.owner_address == owner_address,
                Credential.subaccount_number == subaccount_number,
            )
        )

    def add(self, credential: Credential) -> None:
        """Add a new credential to the current transaction."""
        self._session.add(credential)

    async def delete_for_user(self, user_id: int) -> Credential | None:
        """Delete the user's credential; returns the deleted row, if there was one."""
        credential = await self.get_for_user(user_id)
        if credential is not None:
            await self._session.delete(credential)
            await self._session.flush()
        return credential

    async def due_for_screening(
        self, checked_before: datetime, after_id: int, limit: int
    ) -> Sequence[tuple[int, int, str]]:
        """``(credential id, user id, owner address)`` of credentials whose user was not
        screened since ``checked_before``, by credential id after ``after_id``."""
        rows = await self._session.execute(
            select(Credential.id, Credential.user_id, Credential.owner_address)
            .join(User, User.id == Credential.user_id)
            .where(
                Credential.id > after_id,
                or_(
                    User.compliance_checked_at.is_(None),
                    User.compliance_checked_at < checked_before,
                ),
            )
            .order_by(Credential.id)
            .limit(limit)
        )
        return [(credential_id, user_id, owner) for credential_id, user_id, owner in rows]

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
