"""A venue as one process sees it: shared connections and market data, and traders built on
them. :mod:`core.exchange.factory` builds the configured one.
"""

from __future__ import annotations

from typing import Protocol

from core.exchange.port import Exchange, MarketInfo, VenueCapabilities


class NonceSource(Protocol):
    """Timestamp nonces for the stateful transactions of an owner account."""

    async def next_nonce(self, owner_address: str) -> int:
        """A fresh nonce: about now in unix milliseconds, >= 2**40, strictly above every nonce
        given before for this owner (across processes and restarts).
        """
        ...


class Venue(Protocol):
    """Per-process resources of a venue shared by every trader (connections, caches)."""

    @property
    def capabilities(self) -> VenueCapabilities:
        """What the venue can do."""
        ...

    async def market(self, ticker: str) -> MarketInfo:
        """One market with a fresh oracle price.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    async def block_height(self) -> int:
        """The chain's latest block height (cached briefly).

        Raises:
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    def trader(
        self,
        *,
        owner_address: str,
        subaccount_number: int,
        authenticator_id: int,
        private_key: bytes | None,
        nonces: NonceSource,
    ) -> Exchange:
        """The exchange port bound to one trader's subaccount and API trading key.

        Raises:
            ValueError: The key is not a valid private key for the venue.
        """
        ...

    async def close(self) -> None:
        """Close the shared connections."""
        ...
