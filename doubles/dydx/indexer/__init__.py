"""Indexer double: the comlink REST API and the socks WebSocket over one aiohttp app.

Shapes follow ``indexer/services/comlink`` (controllers, ``request-transformer.ts``, ``types.ts``)
and ``indexer/services/socks`` (``helpers/message.ts``, ``lib/subscription.ts``,
``websocket/index.ts``); numbers are strings where the real API uses strings. The app reads the
:class:`~doubles.dydx.state.ChainState` directly, so it must run on the state's loop.
"""

from doubles.dydx.indexer.app import IndexerDouble
from doubles.dydx.indexer.connections import Handler
from doubles.dydx.indexer.constants import (
    ALL_CHANNELS,
    CANDLE_RESOLUTIONS,
    CHANNEL_BLOCK_HEIGHT,
    CHANNEL_CANDLES,
    CHANNEL_CONNECTION_LIMITS,
    CHANNEL_MARKETS,
    CHANNEL_ORDERBOOK,
    CHANNEL_PARENT_SUBACCOUNTS,
    CHANNEL_SUBACCOUNTS,
    CHANNEL_TRADES,
    COMPLIANCE_STATUSES,
    DEFAULT_LIMIT,
    INDEXER_COMPLIANCE_BLOCKED_PAYLOAD,
    MAX_CANDLES,
    MESSAGE_VERSIONS,
    ORDER_STATUSES,
    ORDER_TYPES,
    POSITION_STATUSES,
    WS_CLOSE_CODE_SERVICE_RESTART,
    WS_CLOSE_TIMEOUT,
)

__all__ = [
    "ALL_CHANNELS",
    "CANDLE_RESOLUTIONS",
    "CHANNEL_BLOCK_HEIGHT",
    "CHANNEL_CANDLES",
    "CHANNEL_CONNECTION_LIMITS",
    "CHANNEL_MARKETS",
    "CHANNEL_ORDERBOOK",
    "CHANNEL_PARENT_SUBACCOUNTS",
    "CHANNEL_SUBACCOUNTS",
    "CHANNEL_TRADES",
    "COMPLIANCE_STATUSES",
    "DEFAULT_LIMIT",
    "INDEXER_COMPLIANCE_BLOCKED_PAYLOAD",
    "MAX_CANDLES",
    "MESSAGE_VERSIONS",
    "ORDER_STATUSES",
    "ORDER_TYPES",
    "POSITION_STATUSES",
    "WS_CLOSE_CODE_SERVICE_RESTART",
    "WS_CLOSE_TIMEOUT",
    "Handler",
    "IndexerDouble",
]
