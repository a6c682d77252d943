"""Re-encryption of every secret under the primary key (``tv2dydx keys rotate``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.uow import UnitOfWork
from core.runtime.logs import get_logger
from core.security.crypto import Keyring, Sealed, open_credential, seal_credential


@dataclass(frozen=True, slots=True)
class RotationReport:
    """Result of a rotation run."""

    resealed: int
    remaining_by_key: dict[str, int]


class KeyRotationService:
    """Moves ciphertexts to the primary key in small committed batches.

    Every credential ends as a box sealed to the primary entry's public key, bound to its
    user, owner and authenticator (rows written before that, bound to the user only, are
    upgraded even when already under the primary).

    Each batch locks its rows with ``SKIP LOCKED`` and commits, so the run can be stopped
    and started again at any time, and runs beside a live service.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring) -> None:
        self._sessionmaker = sessionmaker
        self._keyring = keyring
        self._log = get_logger(__name__)

    async def rotate(self, *, batch_size: int = 100) -> RotationReport:
        """Re-encrypt every credential not yet under the primary key."""
        resealed = 0
        while True:
            async with UnitOfWork(self._sessionmaker) as uow:
                target = self._keyring.sealing_key().sealed_key_id
                batch = await uow.credentials.lock_batch_not_under(target, batch_size)
                if not batch:
                    counts = await uow.credentials.count_by_key()
                    break
                for credential in batch:
                    binding = (
                        credential.user_id,
                        credential.owner_address,
                        credential.authenticator_id,
                    )
                    private_key = open_credential(
                        self._keyring, Sealed(credential.key_id, credential.ciphertext), *binding
                    )
                    sealed = seal_credential(self._keyring, private_key, *binding)
                    credential.key_id, credential.ciphertext = sealed.key_id, sealed.blob
                uow.audit.record(
                    "keys_rotated",
                    user_id=None,
                    actor="system",
                    count=len(batch),
                    to_key=self._keyring.primary_id,
                )
                await uow.commit()
                resealed += len(batch)
                self._log.info("keys_rotation_batch", count=len(batch), total=resealed)
        target = self._keyring.sealing_key().sealed_key_id
        remaining = {k: v for k, v in counts.items() if k != target}
        return RotationReport(resealed=resealed, remaining_by_key=remaining)
