"""The venue factory: the one place outside :mod:`core.exchange.dydx` that knows dYdX.

Composition roots (the bot, the worker, tests, benches) build the configured venue's pieces
here; everything else sees only the venue-neutral port (:class:`~core.exchange.venue.Venue`,
:class:`~core.exchange.provider.ExchangeProvider`, :class:`~core.exchange.keys.KeyVerifier`).
Nothing connects until first use.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.exchange.dydx.history import DydxAccountHistory
from core.exchange.dydx.indexer import DEFAULT_TIMEOUT as INDEXER_TIMEOUT
from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.network import DydxNetwork
from core.exchange.dydx.node import DEFAULT_TIMEOUT as NODE_TIMEOUT
from core.exchange.dydx.node import NodeReader
from core.exchange.dydx.stream import MAX_SUBACCOUNTS_PER_CONNECTION, DydxStream
from core.exchange.dydx.venue import DydxVenue
from core.exchange.dydx.verifier import DydxKeyVerifier
from core.exchange.history import AccountHistory
from core.exchange.keys import KeyVerifier
from core.exchange.provider import ExchangeProvider
from core.exchange.stream import SubaccountStream
from core.exchange.venue import Venue
from core.runtime.config import DydxEndpoints, Settings


def create_venue(endpoints: DydxEndpoints) -> Venue:
    """The configured venue (dYdX v4): shared node channel, Indexer session and caches.

    Create it inside the running event loop and close it on shutdown.
    """
    return DydxVenue(DydxNetwork.from_endpoints(endpoints))


def create_exchange_provider(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, signing: bool = True
) -> ExchangeProvider:
    """The exchange provider for the configured venue.

    Args:
        sessionmaker: Database sessions.
        settings: The configuration.
        signing: Whether this process signs (the worker): it then needs ``ENCRYPTION_KEYS``.
            The bot reads the venue only and never loads the keyring.
    """
    keyring = settings.keyring if signing else None
    return ExchangeProvider(sessionmaker, keyring, create_venue(settings.dydx))


def create_account_history(
    endpoints: DydxEndpoints, *, indexer_timeout: float = INDEXER_TIMEOUT
) -> AccountHistory:
    """The configured venue's account history (equity over time, funding payments)."""
    return DydxAccountHistory(IndexerClient.from_endpoints(endpoints, timeout=indexer_timeout))


def create_key_verifier(
    endpoints: DydxEndpoints,
    *,
    node_timeout: float = NODE_TIMEOUT,
    indexer_timeout: float = INDEXER_TIMEOUT,
) -> KeyVerifier:
    """Checks addresses and trading keys against the configured venue, and screens owners.

    Args:
        endpoints: The venue's endpoints (``settings.dydx``).
        node_timeout: Seconds allowed per node call.
        indexer_timeout: Seconds allowed per Indexer call.
    """
    return DydxKeyVerifier(
        NodeReader.from_endpoints(endpoints, timeout=node_timeout),
        IndexerClient.from_endpoints(endpoints, timeout=indexer_timeout),
    )


def create_subaccount_stream(
    endpoints: DydxEndpoints,
    *,
    max_per_connection: int = MAX_SUBACCOUNTS_PER_CONNECTION,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
    indexer_timeout: float = INDEXER_TIMEOUT,
) -> SubaccountStream:
    """The configured venue's real-time stream of subaccounts (the Indexer WebSocket, with
    REST snapshots for catching up). Create it inside the running event loop and close it on
    shutdown.

    Args:
        endpoints: The venue's endpoints (``settings.dydx``).
        max_per_connection: Subaccount subscriptions per WebSocket connection.
        backoff_initial: First reconnect delay, in seconds.
        backoff_max: Longest reconnect delay, in seconds.
        indexer_timeout: Seconds allowed per Indexer REST call.
    """
    return DydxStream(
        endpoints.indexer_ws_url,
        IndexerClient.from_endpoints(endpoints, timeout=indexer_timeout),
        max_per_connection=max_per_connection,
        backoff_initial=backoff_initial,
        backoff_max=backoff_max,
    )
