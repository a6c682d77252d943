"""``DydxVenue``: the :class:`~core.exchange.venue.Venue` on dYdX v4, building traders on one
shared :class:`~core.exchange.dydx.network.DydxNetwork`."""

from __future__ import annotations

from core.exchange.dydx.adapter import DydxExchange
from core.exchange.dydx.constants import CAPABILITIES
from core.exchange.dydx.network import DydxNetwork
from core.exchange.port import MarketInfo, VenueCapabilities
from core.exchange.venue import NonceSource


class DydxVenue:
    """dYdX v4 for one process: shared connections and caches, and the traders built on them.

    Args:
        network: The shared node, Indexer and caches (the venue closes it).
    """

    def __init__(self, network: DydxNetwork) -> None:
        self.network = network

    @property
    def capabilities(self) -> VenueCapabilities:
        """dYdX v4's capabilities (the short-term order window)."""
        return CAPABILITIES

    async def market(self, ticker: str) -> MarketInfo:
        """One market with an oracle price at most about a second old.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self.network.market(ticker)

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self.network.markets()

    async def block_height(self) -> int:
        """The latest block height, at most a second old.

        Raises:
            ExchangeUnavailableError: The node did not answer.
        """
        return await self.network.block_height()

    def trader(
        self,
        *,
        owner_address: str,
        subaccount_number: int,
        authenticator_id: int,
        private_key: bytes | None,
        nonces: NonceSource,
    ) -> DydxExchange:
        """The exchange port bound to one trader's subaccount and API trading key.

        Args:
            owner_address: The subaccount owner (``dydx1…``).
            subaccount_number: The trading subaccount.
            authenticator_id: The owner's authenticator that authorises the API key.
            private_key: The API key's 32 private key bytes (kept in memory only).
            nonces: Timestamp nonces for stateful orders.

        Raises:
            ValueError: The key is not a valid secp256k1 private key.
        """
        return DydxExchange(
            self.network,
            owner_address=owner_address,
            subaccount_number=subaccount_number,
            authenticator_id=authenticator_id,
            private_key=private_key,
            nonces=nonces,
        )

    async def warm_up(self) -> None:
        """Open the connections and load the markets (see :meth:`DydxNetwork.warm_up`).

        Raises:
            ExchangeUnavailableError: The node or the Indexer did not answer.
        """
        await self.network.warm_up()

    async def close(self) -> None:
        """Close the shared connections."""
        await self.network.close()
