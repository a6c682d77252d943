"""Checking a trader's API trading key against a venue, venue-neutrally.

The venue's address and key formats and its authorisation rules stay inside the venue
(:mod:`core.exchange.dydx.keys`); services see a :class:`KeyVerifier` built by
:mod:`core.exchange.factory` and the typed refusals below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from core.domain.compliance import ComplianceStatus


class KeyProblem(StrEnum):
    """Why an owner address or trading key is refused."""

    MALFORMED_ADDRESS = "MALFORMED_ADDRESS"  # not a dydx1… bech32 account address
    KEY_INSTEAD_OF_ADDRESS = "KEY_INSTEAD_OF_ADDRESS"  # a private key where the address goes
    MNEMONIC = "MNEMONIC"  # a seed phrase: never accepted, whatever the step
    MALFORMED_KEY = "MALFORMED_KEY"  # not 64 hexadecimal characters
    INVALID_KEY = "INVALID_KEY"  # 64 hex, but not a secp256k1 private key
    MASTER_KEY = "MASTER_KEY"  # the key of the owner account itself
    NO_AUTHENTICATOR = "NO_AUTHENTICATOR"  # the owner never authorised this key
    # an authenticator mentioning the key cannot be parsed or understood: refused, fail closed
    UNREADABLE_AUTHENTICATOR = "UNREADABLE_AUTHENTICATOR"
    TOO_BROAD = "TOO_BROAD"  # the key could also move funds
    CANNOT_TRADE = "CANNOT_TRADE"  # the key is authorised, but not to place orders


class KeyCheckError(ValueError):
    """An address, key or authorisation is refused.

    Attributes:
        problem: What is wrong, for the edge to explain in plain words.
    """

    def __init__(self, problem: KeyProblem) -> None:
        super().__init__(problem.value)  # never the offending input
        self.problem = problem


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A trading key the venue lets place and cancel orders, and nothing else.

    Attributes:
        owner_address: The canonical owner address.
        key_address: The key's own address.
        subaccount_number: The subaccount the key trades.
        authenticator_id: The owner's authenticator that authorises the key.
        private_key: The key's raw bytes (never in ``repr``).
    """

    owner_address: str
    key_address: str
    subaccount_number: int
    authenticator_id: int
    private_key: bytes = field(repr=False)


class KeyVerifier(Protocol):
    """Checks owner addresses and trading keys against a venue, and screens owners."""

    def parse_owner_address(self, text: str) -> str:
        """The canonical form of an owner address.

        Raises:
            KeyCheckError: ``MALFORMED_ADDRESS``, ``MNEMONIC`` or ``KEY_INSTEAD_OF_ADDRESS``.
        """
        ...

    async def verify_key(self, owner_address: str, private_key_text: str) -> VerifiedKey:
        """Parse a key and check, against the venue, that it may trade and do nothing else.

        Raises:
            KeyCheckError: The address or key is refused.
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    async def check_authorization(
        self, owner_address: str, private_key: bytes, authenticator_id: int
    ) -> None:
        """Re-read the owner's authenticators: the stored one must still exist and every one
        mentioning the key must still allow nothing but placing and cancelling orders.

        Raises:
            KeyCheckError: ``NO_AUTHENTICATOR`` (removed), ``TOO_BROAD``,
                ``UNREADABLE_AUTHENTICATOR`` or ``CANNOT_TRADE``.
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    async def compliance_screen(self, address: str) -> ComplianceStatus:
        """The venue's compliance status of an address.

        Raises:
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    async def close(self) -> None:
        """Close the connections the verifier owns."""
        ...
