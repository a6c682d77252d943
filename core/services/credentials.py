"""The dYdX API trading key: validation against the chain, encryption at rest, compliance.

A key is accepted only if the owner's authenticators let it place and cancel orders and
nothing else, so holding it never makes tv2dydx custodial. Checks run cheapest first: the
text itself, then the node, then the Indexer, then the database.

The key's plaintext lives only in local variables of :meth:`CredentialService.add_key` and
:meth:`CredentialService.load_signing_key`; it never reaches a log line, an exception
message, an audit entry or a :class:`CredentialView`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Credential, User
from core.db.uow import UnitOfWork
from core.domain.compliance import ComplianceStatus
from core.exchange.errors import ExchangeUnavailableError
from core.exchange.keys import KeyCheckError, KeyVerifier
from core.runtime.logs import get_logger
from core.security.crypto import Keyring, Sealed, Sealer, open_credential, seal_credential
from core.texts.key import compliance_notice

# The daily screen runs hourly and takes whoever was last screened more than this ago, so a
# worker that was down at the usual time catches up instead of skipping a day.
SCREEN_INTERVAL = timedelta(hours=23)
# Stop a screening run after this many failures in a row: the Indexer is down, try next hour.
MAX_CONSECUTIVE_FAILURES = 3
COMPLIANCE_NOTIFICATION = "compliance"


class Refusal(StrEnum):
    """Why a trading key was not stored (the bot explains each in plain words)."""

    MALFORMED_ADDRESS = "MALFORMED_ADDRESS"
    KEY_INSTEAD_OF_ADDRESS = "KEY_INSTEAD_OF_ADDRESS"
    MNEMONIC = "MNEMONIC"
    MALFORMED_KEY = "MALFORMED_KEY"
    INVALID_KEY = "INVALID_KEY"
    MASTER_KEY = "MASTER_KEY"
    NO_AUTHENTICATOR = "NO_AUTHENTICATOR"
    UNREADABLE_AUTHENTICATOR = "UNREADABLE_AUTHENTICATOR"
    TOO_BROAD = "TOO_BROAD"
    CANNOT_TRADE = "CANNOT_TRADE"
    ACCOUNT_TAKEN = "ACCOUNT_TAKEN"  # another user of this bot trades that subaccount


class CredentialRefusedError(Exception):
    """The address or key was refused; nothing was stored.

    Attributes:
        reason: Why, for the edge to explain.
    """

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)  # never the offending input
        self.reason = reason


class NoCredentialError(LookupError):
    """The user has no trading key."""


@dataclass(frozen=True, slots=True)
class CredentialView:
    """What the edges may know about a stored trading key: never the key itself.

    Attributes:
        owner_address: The dYdX account the key trades for.
        key_address: The key's own address (the web app's "API Wallet Address").
        authenticator_id: The owner's authenticator that authorises the key.
        subaccount_number: The subaccount traded.
        created_at: When this key was added.
        compliance_status: The owner address's last screening result.
        compliance_checked_at: When it was screened.
    """

    owner_address: str
    key_address: str
    authenticator_id: int
    subaccount_number: int
    created_at: datetime
    compliance_status: ComplianceStatus | None
    compliance_checked_at: datetime | None

    @classmethod
    def of(cls, credential: Credential, user: User) -> CredentialView:
        """Project ORM rows."""
        status = user.compliance_status
        return cls(
            owner_address=credential.owner_address,
            key_address=credential.key_address,
            authenticator_id=credential.authenticator_id,
            subaccount_number=credential.subaccount_number,
            created_at=credential.created_at,
            compliance_status=ComplianceStatus(status) if status else None,
            compliance_checked_at=user.compliance_checked_at,
        )


@dataclass(frozen=True, slots=True)
class ScreeningReport:
    """What one compliance screening run did."""

    screened: int = 0
    changed: int = 0
    failed: int = 0
    aborted: bool = False


class CredentialService:
    """Adds, shows, removes and screens users' dYdX API trading keys.

    Args:
        sessionmaker: Database sessions.
        sealer: Seals an accepted key for the worker: the worker's public sealing key in the
            bot (which never holds the keyring), or the keyring itself in the worker.
        verifier: Checks addresses and keys against the venue and screens owners
            (:func:`core.exchange.factory.create_key_verifier`).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sealer: Sealer,
        verifier: KeyVerifier,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sealer = sealer
        self._verifier = verifier
        self._log = get_logger(__name__)

    async def close(self) -> None:
        """Close the venue connections the service owns."""
        await self._verifier.close()

    def check_owner_address(self, text: str) -> str:
        """Validate the owner address alone (the conversation's first step).

        Returns:
            The canonical address.

        Raises:
            CredentialRefusedError: ``MALFORMED_ADDRESS``, ``MNEMONIC`` or
                ``KEY_INSTEAD_OF_ADDRESS``.
        """
        try:
            return self._verifier.parse_owner_address(text)
        except KeyCheckError as exc:
            raise CredentialRefusedError(Refusal(exc.problem.value)) from None

    async def add_key(
        self,
        user_id: int,
        owner_address: str,
        private_key_text: str,
        *,
        finish: Callable[[UnitOfWork, CredentialView], Awaitable[None]] | None = None,
    ) -> CredentialView:
        """Validate a trading key against the chain and store it encrypted.

        An existing key of the user is replaced only once the new one passed every check.

        Args:
            user_id: The user.
            owner_address: The dYdX account the key trades for.
            private_key_text: The key as the user typed it (64 hex, optional ``0x``).
            finish: Run inside the storing transaction just before it commits (the Mini App
                form consumes its single-use token and queues the chat confirmation there);
                whatever it raises rolls everything back.

        Returns:
            The stored key's view, with the screening result.

        Raises:
            CredentialRefusedError: The address or key is refused; nothing was stored.
            ExchangeUnavailableError: The node or the Indexer could not answer; nothing was stored
                and trying again later may work.
            LookupError: No such user.
        """
        log = self._log.bind(user_id=user_id)
        try:
            verified = await self._verifier.verify_key(owner_address, private_key_text)
        except KeyCheckError as exc:
            log.info("credential_refused", reason=exc.problem.value)
            raise CredentialRefusedError(Refusal(exc.problem.value)) from None
        owner, key_address = verified.owner_address, verified.key_address
        subaccount = verified.subaccount_number
        # Named so that Sentry's frame variables are blanked by name (bytes have no
        # recognisable shape for the redactor).
        private_key = verified.private_key
        status = await self._verifier.compliance_screen(owner)
        now = utcnow()
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            taken = await uow.credentials.get_by_owner(owner, subaccount)
            if taken is not None and taken.user_id != user_id:
                log.info("credential_refused", reason=Refusal.ACCOUNT_TAKEN.value)
                raise CredentialRefusedError(Refusal.ACCOUNT_TAKEN)
            sealed = seal_credential(
                self._sealer, private_key, user_id, owner, verified.authenticator_id
            )
            credential = await uow.credentials.get_for_user(user_id)
            replaced = credential is not None
            if credential is None:
                credential = Credential(user_id=user_id)
                uow.credentials.add(credential)
            credential.owner_address = owner
            credential.subaccount_number = subaccount
            credential.key_address = key_address
            credential.authenticator_id = verified.authenticator_id
            credential.key_id = sealed.key_id
            credential.ciphertext = sealed.blob
            credential.created_at = now  # "added on" is the date of this key, not the row
            user.compliance_status = status.value
            user.compliance_checked_at = now
            details: dict[str, Any] = {
                "owner_address": owner,
                "key_address": key_address,
                "authenticator_id": verified.authenticator_id,
                "subaccount_number": subaccount,
                "compliance": status.value,
            }
            action = "credential_replaced" if replaced else "credential_added"
            uow.audit.record(action, user_id=user_id, **details)
            view = CredentialView.of(credential, user)
            if finish is not None:
                await finish(uow, view)
            try:
                await uow.commit()
            except IntegrityError:
                # Another user stored the same subaccount between our check and commit.
                log.info("credential_refused", reason=Refusal.ACCOUNT_TAKEN.value)
                raise CredentialRefusedError(Refusal.ACCOUNT_TAKEN) from None
            log.info(action, **details)
            return view

    async def status(self, user_id: int) -> CredentialView | None:
        """The user's trading key, or None."""
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            user = await uow.users.get(user_id)
            if credential is None or user is None:
                return None
            return CredentialView.of(credential, user)

    async def remove(self, user_id: int) -> bool:
        """Forget the user's trading key (the authenticator on dYdX stays until the user
        removes it there).

        Returns:
            Whether there was a key.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            removed = await uow.credentials.delete_for_user(user_id)
            if removed is None:
                return False
            uow.audit.record(
                "credential_removed",
                user_id=user_id,
                owner_address=removed.owner_address,
                key_address=removed.key_address,
                authenticator_id=removed.authenticator_id,
            )
            await uow.commit()
        self._log.info("credential_removed", user_id=user_id)
        return True

    async def load_signing_key(self, user_id: int) -> bytes:
        """Decrypt the user's key for signing (the worker only). Keep the result in a local
        variable only.

        Raises:
            NoCredentialError: The user has no key.
            TypeError: This service was given a public sealing key, not the keyring.
            DecryptionError: The ciphertext does not open for this user (tampered, moved
                from another row, or sealed under a key no longer in the ring).
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            if credential is None:
                raise NoCredentialError(user_id)
            sealed = Sealed(credential.key_id, credential.ciphertext)
            owner, authenticator_id = credential.owner_address, credential.authenticator_id
        if not isinstance(self._sealer, Keyring):
            raise TypeError("keyring required (worker only)")
        return open_credential(self._sealer, sealed, user_id, owner, authenticator_id)

    async def screen_all(
        self,
        *,
        interval: timedelta = SCREEN_INTERVAL,
        pause: float = 0.1,
        batch_size: int = 100,
        max_users: int | None = None,
    ) -> ScreeningReport:
        """Screen every owner address not screened within ``interval``.

        Idempotent: each user's result, audit entry and notification commit together, so a
        run that is repeated or interrupted neither screens twice nor notifies twice.

        Args:
            interval: Screen users last screened longer ago than this.
            pause: Seconds between Indexer calls (its REST limit is 100 requests per 10 s).
            batch_size: Credentials read per query.
            max_users: Stop after asking about this many users (a bounded run; the next run
                resumes with those still due). None: every user due.
        """
        cutoff = utcnow() - interval
        screened = changed = failed = consecutive = 0
        after_id = 0
        while True:
            async with UnitOfWork(self._sessionmaker) as uow:
                batch = await uow.credentials.due_for_screening(cutoff, after_id, batch_size)
            if not batch:
                break
            if max_users is not None:
                batch = batch[: max(0, max_users - screened - failed)]
                if not batch:
                    break
            for credential_id, user_id, owner in batch:
                after_id = credential_id
                try:
                    status = await self._verifier.compliance_screen(owner)
                except ExchangeUnavailableError:
                    failed += 1
                    consecutive += 1
                    if consecutive >= MAX_CONSECUTIVE_FAILURES:
                        self._log.warning("compliance_screen_aborted", failed=failed)
                        return ScreeningReport(screened, changed, failed, aborted=True)
                    continue
                consecutive = 0
                screened += 1
                if await self._record_screening(user_id, owner, status):
                    changed += 1
                if pause:
                    await asyncio.sleep(pause)
        return ScreeningReport(screened, changed, failed)

    async def _record_screening(self, user_id: int, owner: str, status: ComplianceStatus) -> bool:
        """Store one result; notify the user when it changed. Returns whether it changed."""
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            credential = await uow.credentials.get_for_user(user_id)
            if user is None or credential is None or credential.owner_address != owner:
                return False  # removed or replaced meanwhile: add_key screened the new one
            previous = user.compliance_status
            user.compliance_status = status.value
            user.compliance_checked_at = utcnow()
            changed = previous != status.value
            if changed:
                uow.audit.record(
                    "compliance_changed",
                    user_id=user_id,
                    actor="system",
                    owner_address=owner,
                    previous=previous,
                    status=status.value,
                )
                if previous is not None or status is not ComplianceStatus.COMPLIANT:
                    await uow.notifications.enqueue(
                        chat_id=user.notify_chat_id or user.telegram_id,
                        kind=COMPLIANCE_NOTIFICATION,
                        text=compliance_notice(status, owner),
                        user_id=user_id,
                    )
            await uow.commit()
        if changed:
            self._log.info(
                "compliance_changed", user_id=user_id, previous=previous, status=status.value
            )
        return changed
