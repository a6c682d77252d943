"""Which exchange a trader's orders go to: the live venue with their API trading key, or the
paper venue.

One :class:`ExchangeProvider` per process holds the shared venue connections (on dYdX: gRPC
channel, Indexer session, market and height caches); a per-trader exchange is cheap to build
for each job. The API key is decrypted into the exchange object only, and lives as long as the
job. :func:`core.exchange.factory.create_exchange_provider` builds the configured one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Credential
from core.db.repositories.execution import LoadedAlert
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.exchange.paper.venue import PaperExchange
from core.exchange.port import Account, Exchange, Position
from core.exchange.venue import Venue
from core.security.crypto import DecryptionError, Keyring, Sealed, open_credential
from core.texts.trade import KEY_UNREADABLE, NO_KEY


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's error as seen (an early read nobody needed may fail)."""
    if not future.cancelled():
        future.exception()


class TradingNotReadyError(Exception):
    """The trader cannot trade yet (or any more).

    Attributes:
        reason: Plain words: what is missing and how to fix it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A trader's stored API trading key, still encrypted, and what it trades."""

    owner_address: str
    subaccount_number: int
    authenticator_id: int
    key_id: str
    ciphertext: bytes = field(repr=False)

    @classmethod
    def of(cls, row: LoadedAlert | Credential) -> StoredKey | None:
        """From a credential row or a loaded alert; None when the trader has no key."""
        if isinstance(row, Credential):
            return cls(
                row.owner_address,
                row.subaccount_number,
                row.authenticator_id,
                row.key_id,
                row.ciphertext,
            )
        if (
            row.owner_address is None
            or row.subaccount_number is None
            or row.authenticator_id is None
            or row.key_id is None
            or row.ciphertext is None
        ):
            return None
        return cls(
            row.owner_address,
            row.subaccount_number,
            row.authenticator_id,
            row.key_id,
            row.ciphertext,
        )


class PgNonces:
    """Timestamp nonces for stateful orders, made durable and monotonic in PostgreSQL."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def next_nonce(self, owner_address: str) -> int:
        """``max(now in ms, last + 1)`` for the account, recorded before it is used."""
        async with UnitOfWork(self._sessionmaker) as uow:
            nonce = await uow.nonces.next_nonce(owner_address, time.time_ns() // 1_000_000)
            await uow.commit()
        return nonce


class ExchangeProvider:
    """Builds the exchange a trader's orders go to.

    Args:
        sessionmaker: Database sessions (credentials, paper venue, nonces).
        keyring: Decrypts API trading keys; None in the processes that only read (the bot,
            the web): their live exchanges read the venue and refuse to sign.
        venue: The live venue's shared connections (also the paper venue's market data).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keyring: Keyring | None,
        venue: Venue,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._keyring = keyring
        self.venue = venue
        self._nonces = PgNonces(sessionmaker)

    @property
    def can_sign(self) -> bool:
        """Whether this process holds the keyring (only the worker does)."""
        return self._keyring is not None

    async def close(self) -> None:
        """Close the shared connections."""
        await self.venue.close()

    def read_subaccount(
        self, owner_address: str, subaccount_number: int
    ) -> asyncio.Future[tuple[Account, list[Position]]]:
        """Start reading a live subaccount's collateral and positions now (one request,
        shared with any caller asking meanwhile); await the future for them.

        For a caller that knows the subaccount before it has the trader's key (an alert
        job, from its hint); nothing is signed, and a future nobody awaits fails silently.
        """
        reader = self.venue.trader(
            owner_address=owner_address,
            subaccount_number=subaccount_number,
            authenticator_id=0,  # read-only: without a private key nothing is signed
            private_key=None,
            nonces=self._nonces,
        )
        future = asyncio.gather(reader.account(), reader.positions())
        future.add_done_callback(_retrieve)
        return future

    async def for_user(self, user_id: int, prefs: Preferences) -> Exchange:
        """The exchange for a trader: paper when their preferences say so, else the live venue.

        Raises:
            TradingNotReadyError: No key stored, or it cannot be decrypted.
        """
        if prefs.paper:
            return PaperExchange(self._sessionmaker, user_id, self.venue)
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            key = StoredKey.of(credential) if credential is not None else None
        return self.for_credential(user_id, prefs, key)

    def for_credential(
        self, user_id: int, prefs: Preferences, credential: StoredKey | None
    ) -> Exchange:
        """Like :meth:`for_user`, with the user's credential row already loaded.

        Raises:
            TradingNotReadyError: No key stored, or it cannot be decrypted.
        """
        if prefs.paper:
            return PaperExchange(self._sessionmaker, user_id, self.venue)
        if credential is None:
            raise TradingNotReadyError(NO_KEY)
        sealed = Sealed(credential.key_id, credential.ciphertext)
        owner, subaccount = credential.owner_address, credential.subaccount_number
        authenticator_id = credential.authenticator_id
        private_key = None
        if self._keyring is not None:
            try:
                private_key = open_credential(
                    self._keyring, sealed, user_id, owner, authenticator_id
                )
            except DecryptionError:
                raise TradingNotReadyError(KEY_UNREADABLE) from None
        return self.venue.trader(
            owner_address=owner,
            subaccount_number=subaccount,
            authenticator_id=authenticator_id,
            private_key=private_key,
            nonces=self._nonces,
        )
