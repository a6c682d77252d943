"""Keep checking what a stored trading key may do (issue #13, part 3).

The chain's permission check is not a one-off at ``/key``: the owner can later widen the
key's authenticator, add a second one that lets it transfer, or remove it. The worker
re-reads the owner's authenticators for every stored key daily, and for every key soon after
it starts (whatever changed while it was down). A key whose stored authenticator is gone, or
that any authenticator now lets do more than place and cancel orders (or in a way we cannot
read), is removed from tv2dydx and trading is paused; orders already on the chain (the
position's take-profit and stop-loss) are left as they are, and the trader is told what
changed and what to do. A venue that does not answer changes nothing (tried next run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Credential
from core.db.uow import UnitOfWork
from core.exchange.errors import ExchangeUnavailableError
from core.exchange.keys import KeyCheckError, KeyVerifier
from core.runtime.logs import get_logger
from core.security.crypto import DecryptionError, Keyring, Sealed, open_credential
from core.texts.key import key_suspended

#: Every stored key is re-checked at least this often.
RECHECK_INTERVAL = timedelta(hours=23)
#: After a restart every key is re-checked, unless checked this recently (cached for minutes).
RECHECK_AFTER_START = timedelta(minutes=5)
KEY_SUSPENDED_NOTIFICATION = "key_suspended"
MAX_CONSECUTIVE_FAILURES = 3


@dataclass(frozen=True, slots=True)
class RecheckReport:
    """What one re-check run did."""

    checked: int = 0
    stopped: int = 0
    failed: int = 0
    aborted: bool = False


class AuthorizationWatch:
    """Re-reads the authenticators of stored keys and stops trading when they changed.

    Args:
        sessionmaker: Database sessions.
        keyring: Opens the stored keys (the worker's; the public key is derived from them).
        verifier: Reads the owner's authenticators from the venue.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        verifier: KeyVerifier,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._keyring = keyring
        self._verifier = verifier
        self._log = get_logger(__name__)

    async def close(self) -> None:
        """Close the venue connections the watch owns."""
        await self._verifier.close()

    async def recheck_due(
        self, *, older_than: timedelta = RECHECK_INTERVAL, max_keys: int = 300
    ) -> RecheckReport:
        """Re-check the keys not checked within ``older_than`` (oldest first, bounded).

        Idempotent: each key's result commits on its own, so a repeated or interrupted run
        neither checks twice nor tells the trader twice.
        """
        cutoff = utcnow() - older_than
        async with UnitOfWork(self._sessionmaker) as uow:
            due = list(
                await uow.session.scalars(
                    select(Credential.user_id)
                    .where(
                        or_(
                            Credential.authorization_checked_at.is_(None),
                            Credential.authorization_checked_at < cutoff,
                        )
                    )
                    .order_by(Credential.authorization_checked_at.nulls_first(), Credential.id)
                    .limit(max_keys)
                )
            )
        checked = stopped = failed = consecutive = 0
        for user_id in due:
            try:
                if await self.recheck(user_id):
                    stopped += 1
            except ExchangeUnavailableError:
                failed += 1
                consecutive += 1
                if consecutive >= MAX_CONSECUTIVE_FAILURES:
                    self._log.warning("key_recheck_aborted", failed=failed)
                    return RecheckReport(checked, stopped, failed, aborted=True)
                continue
            consecutive = 0
            checked += 1
        return RecheckReport(checked, stopped, failed)

    async def recheck(self, user_id: int) -> bool:
        """Re-check one user's key now.

        Returns:
            Whether trading was stopped because the key's permission changed.

        Raises:
            ExchangeUnavailableError: The venue could not answer; nothing changed.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            if credential is None:
                return False
            owner, authenticator_id = credential.owner_address, credential.authenticator_id
            credential_id = credential.id
            sealed = Sealed(credential.key_id, credential.ciphertext)
        try:
            private_key = open_credential(self._keyring, sealed, user_id, owner, authenticator_id)
        except DecryptionError:
            self._log.error("key_recheck_unreadable", user_id=user_id)
            return False  # the provider refuses it at its next use and says so
        try:
            await self._verifier.check_authorization(owner, private_key, authenticator_id)
        except KeyCheckError as exc:
            return await self._stop(user_id, credential_id, owner, exc.problem.value)
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            if credential is not None and credential.id == credential_id:
                credential.authorization_checked_at = utcnow()
                await uow.commit()
        return False

    async def _stop(self, user_id: int, credential_id: int, owner: str, problem: str) -> bool:
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            user = await uow.users.get(user_id)
            if credential is None or credential.id != credential_id or user is None:
                return False  # replaced or removed meanwhile: the new key was checked at /key
            await uow.credentials.delete_for_user(user_id)
            user.paused = True
            uow.audit.record(
                "credential_suspended",
                user_id=user_id,
                actor="system",
                owner_address=owner,
                authenticator_id=credential.authenticator_id,
                problem=problem,
            )
            await uow.notifications.enqueue(
                chat_id=user.telegram_id,
                kind=KEY_SUSPENDED_NOTIFICATION,
                text=key_suspended(problem, owner),
                user_id=user_id,
                dedupe_key=f"key_suspended:{credential_id}",
            )
            await uow.commit()
        self._log.warning("credential_suspended", user_id=user_id, problem=problem)
        return True
