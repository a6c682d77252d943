"""Constants of the Indexer double: statuses, limits, channels, message versions."""

from __future__ import annotations

INDEXER_COMPLIANCE_BLOCKED_PAYLOAD = (
    "Because this address appears to be a resident of, or trading from, a jurisdiction that "
    "violates our terms of use, or has engaged in activity that violates our terms of use, this "
    "address has been blocked."
)
COMPLIANCE_STATUSES = frozenset(
    {"COMPLIANT", "FIRST_STRIKE_CLOSE_ONLY", "FIRST_STRIKE", "CLOSE_ONLY", "BLOCKED"}
)
ORDER_STATUSES = (
    "OPEN",
    "FILLED",
    "CANCELED",
    "BEST_EFFORT_CANCELED",
    "UNTRIGGERED",
    "BEST_EFFORT_OPENED",
)
ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP_LIMIT",
    "STOP_MARKET",
    "TRAILING_STOP",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
)
POSITION_STATUSES = ("OPEN", "CLOSED", "LIQUIDATED")
CANDLE_RESOLUTIONS = {
    "1MIN": 60,
    "5MINS": 300,
    "15MINS": 900,
    "30MINS": 1800,
    "1HOUR": 3600,
    "4HOURS": 14400,
    "1DAY": 86400,
}
DEFAULT_LIMIT = 1000
MAX_CANDLES = 100

CHANNEL_SUBACCOUNTS = "v4_subaccounts"
CHANNEL_MARKETS = "v4_markets"
CHANNEL_BLOCK_HEIGHT = "v4_block_height"
CHANNEL_ORDERBOOK = "v4_orderbook"
CHANNEL_TRADES = "v4_trades"
CHANNEL_CANDLES = "v4_candles"
CHANNEL_PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
ALL_CHANNELS = (
    CHANNEL_ORDERBOOK,
    CHANNEL_SUBACCOUNTS,
    CHANNEL_TRADES,
    CHANNEL_MARKETS,
    CHANNEL_CANDLES,
    CHANNEL_PARENT_SUBACCOUNTS,
    CHANNEL_BLOCK_HEIGHT,
)
#: kafka/src/constants.ts
MESSAGE_VERSIONS = {
    CHANNEL_SUBACCOUNTS: "2.4.0",
    CHANNEL_MARKETS: "1.0.0",
    CHANNEL_BLOCK_HEIGHT: "1.0.0",
    CHANNEL_ORDERBOOK: "1.0.0",
    CHANNEL_TRADES: "2.1.0",
    CHANNEL_CANDLES: "1.0.0",
}
#: Per-connection subscription limits (socks ``lib/subscription.ts CHANNEL_CONNECTION_LIMITS``,
#: defaults of ``config.ts``); v4_block_height allows one.
CHANNEL_CONNECTION_LIMITS = {
    CHANNEL_SUBACCOUNTS: 256,
    CHANNEL_PARENT_SUBACCOUNTS: 256,
    CHANNEL_BLOCK_HEIGHT: 1,
    CHANNEL_CANDLES: 32,
    CHANNEL_MARKETS: 32,
    CHANNEL_ORDERBOOK: 32,
    CHANNEL_TRADES: 32,
}
#: Service-restart close code socks uses when it drops connections.
WS_CLOSE_CODE_SERVICE_RESTART = 1012
WS_CLOSE_TIMEOUT = 0.5
