"""Protocol constants of the dYdX v4 double: windows, order flags, fees, statuses."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import Order

# --------------------------------------------------------------------------------------------
# Protocol constants
# --------------------------------------------------------------------------------------------

#: ShortBlockWindow is 40 since protocol v9.5.0 (it was 20 before).
SHORT_BLOCK_WINDOW = 40
#: StatefulOrderTimeWindow: the furthest a stateful order's good_til_block_time may lie ahead.
STATEFUL_ORDER_TIME_WINDOW = timedelta(days=95)
MAX_SUBACCOUNT_NUMBER = 128_000
MAX_CLIENT_ID = 2**32 - 1
#: x/accountplus keeps this many timestamp nonces per account.
TIMESTAMP_NONCE_WINDOW = 20

ORDER_FLAG_SHORT_TERM = 0
ORDER_FLAG_CONDITIONAL = 32
ORDER_FLAG_LONG_TERM = 64
ORDER_FLAG_TWAP = 128

SIDE_BUY = Order.Side.SIDE_BUY
SIDE_SELL = Order.Side.SIDE_SELL
TIF_UNSPECIFIED = Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED
TIF_IOC = Order.TimeInForce.TIME_IN_FORCE_IOC
TIF_POST_ONLY = Order.TimeInForce.TIME_IN_FORCE_POST_ONLY
TIF_FOK = Order.TimeInForce.TIME_IN_FORCE_FILL_OR_KILL
CONDITION_UNSPECIFIED = Order.ConditionType.CONDITION_TYPE_UNSPECIFIED
CONDITION_STOP_LOSS = Order.ConditionType.CONDITION_TYPE_STOP_LOSS
CONDITION_TAKE_PROFIT = Order.ConditionType.CONDITION_TYPE_TAKE_PROFIT

TAKER_FEE_RATE = Decimal("0.0005")
MAKER_FEE_RATE = Decimal("0.0001")
USDC_QUANTUM = Decimal("0.000001")

#: Block rate limits (``/dydxprotocol/clob/block_rate``): (blocks, max messages), per owner
#: address (``rate_limit/order_rate_limiter.go``). Stateful: ``testing/genesis.sh`` (mainnet
#: genesis had the same); short-term: the v5.0.0 upgrade folded places and cancels into one
#: 5-block window (mainnet value per the docs).
STATEFUL_ORDER_RATE_LIMITS: tuple[tuple[int, int], ...] = ((1, 2), (100, 20))
SHORT_TERM_RATE_LIMITS: tuple[tuple[int, int], ...] = ((5, 2000),)
#: A MsgBatchCancel counts this much towards the short-term limit (BATCH_CANCEL_RATE_LIMIT_WEIGHT).
BATCH_CANCEL_RATE_LIMIT_WEIGHT = 2

#: Namespace of every Indexer uuid (``indexer/packages/postgres/src/helpers/uuid.ts``).
INDEXER_UUID_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")

# Indexer order statuses (APIOrderStatus).
STATUS_OPEN = "OPEN"
STATUS_FILLED = "FILLED"
STATUS_CANCELED = "CANCELED"
STATUS_BEST_EFFORT_CANCELED = "BEST_EFFORT_CANCELED"
STATUS_BEST_EFFORT_OPENED = "BEST_EFFORT_OPENED"
STATUS_UNTRIGGERED = "UNTRIGGERED"
LIVE_STATUSES = frozenset({STATUS_OPEN, STATUS_BEST_EFFORT_OPENED, STATUS_UNTRIGGERED})

# Order removal reasons as the Indexer reports them.
REMOVAL_USER_CANCELED = "ORDER_REMOVAL_REASON_USER_CANCELED"
REMOVAL_EXPIRED = "ORDER_REMOVAL_REASON_EXPIRED"
REMOVAL_UNDERCOLLATERALIZED = "ORDER_REMOVAL_REASON_UNDERCOLLATERALIZED"
REMOVAL_IOC_WOULD_REST = "ORDER_REMOVAL_REASON_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK"
REMOVAL_POST_ONLY_WOULD_CROSS = "ORDER_REMOVAL_REASON_POST_ONLY_WOULD_CROSS_MAKER_ORDER"
REMOVAL_INVALID_REDUCE_ONLY = "ORDER_REMOVAL_REASON_INVALID_REDUCE_ONLY"
REMOVAL_REDUCE_ONLY_RESIZE = "ORDER_REMOVAL_REASON_REDUCE_ONLY_RESIZE"

POSITION_OPEN = "OPEN"
POSITION_CLOSED = "CLOSED"
