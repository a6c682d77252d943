"""A linked wallet and an issued link as the edges show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eth_utils.address import to_checksum_address

from core.db.models import Wallet


@dataclass(frozen=True, slots=True)
class WalletView:
    """A linked wallet as the edges show it.

    Attributes:
        address: EIP-55 checksummed address.
        chain_id: The chain the link was signed for.
        linked_at: When it was linked (UTC).
    """

    address: str
    chain_id: int
    linked_at: datetime

    @classmethod
    def of(cls, wallet: Wallet) -> WalletView:
        """Project an ORM row."""
        return cls(
            address=to_checksum_address(wallet.address),
            chain_id=wallet.chain_id,
            linked_at=wallet.linked_at,
        )


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A freshly issued link. The token exists only here and in the user's chat.

    Attributes:
        token: The one-time token (never logged or stored).
        url: ``{PUBLIC_BASE_URL}/link/{token}``.
        expires_at: When it stops working.
    """

    token: str
    url: str
    expires_at: datetime
