"""In-memory dYdX v4 exchange state shared by the gRPC node double and the Indexer double.

Pure Python and Decimal arithmetic, no I/O. Everything here runs on the double's single event
loop, so there are no locks. The semantics follow the chain (``protocol/x/clob``,
``protocol/x/accountplus``) and the Indexer (``indexer/services/comlink``, ``ender``) closely
enough for an adapter to be contract-tested against it:

* short-term orders (flags 0) need ``height < good_til_block <= height + ShortBlockWindow``;
  IOC orders fill at once at the oracle price (rounded to a tick against the taker) when it is
  within their limit, else they are cancelled;
* long-term orders (flags 64) rest and fill as makers at their limit price once the oracle
  crosses it at a block;
* conditional orders (flags 32) rest ``UNTRIGGERED``, trigger in the EndBlocker of the block
  where the oracle crosses the trigger and execute in the next block;
* reduce-only orders must be IOC, are refused in the position's own direction and are resized
  so they never flip a position;
* client-id reuse, collateral checks, fees and block rate limits answer with the chain's real
  error codes (``x/clob/types/errors.go``); rate limits count refused messages too, per owner;
* a stateful order id exists at most once: 3005 while live (or uncommitted), 3008 after a
  cancel until the next block, reusable once removed (cancel, expiry, full fill);
* with ``stateful_orders_next_block`` stateful orders are placed by DeliverTx in the next
  block, which repeats the checks and may fail (:attr:`ChainState.delivery_failures`).

There is one infinitely deep counterparty at the oracle price; the double does not match users
against each other.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_UP, Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import Order, OrderId
from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from doubles.dydx.authconfig import AuthenticatorError, validate_authenticator
from doubles.dydx.keys import is_valid_address

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Results and errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TxResult:
    """Outcome of a message as CheckTx would report it.

    Attributes:
        code: 0 on success, otherwise the registered error code of ``codespace``.
        codespace: Module of the error (``"clob"``, ``"subaccounts"``…), empty on success.
        log: The raw log the chain would return.
    """

    code: int = 0
    codespace: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        """True when the message was accepted."""
        return self.code == 0


OK = TxResult()


@dataclass(frozen=True)
class ChainError:
    """A registered cosmos-sdk error (``errorsmod.Register(codespace, code, description)``)."""

    codespace: str
    code: int
    description: str

    def result(self, detail: str = "") -> TxResult:
        """Build the TxResult of this error, wrapped with ``detail`` like ``errorsmod.Wrapf``."""
        text = f"{detail}: {self.description}" if detail else self.description
        return TxResult(self.code, self.codespace, text)


ERR_INVALID_ORDER_SIDE = ChainError("clob", 3, "Invalid order side")
ERR_INVALID_ORDER_QUANTUMS = ChainError("clob", 4, "Invalid order quantums")
ERR_INVALID_ORDER_GOOD_TIL_BLOCK = ChainError("clob", 5, "Invalid order goodTilBlock")
ERR_INVALID_ORDER_SUBTICKS = ChainError("clob", 6, "Invalid order subticks")
ERR_ORDER_IS_CANCELED = ChainError("clob", 7, "Attempt to place an order that is already canceled")
ERR_INVALID_CLOB = ChainError("clob", 8, "ClobPair ID does not reference a valid CLOB")
ERR_MEMCLOB_CANCEL_ALREADY_EXISTS = ChainError(
    "clob",
    9,
    "A cancel already exists in the memclob for this order with a greater than or equal "
    "GoodTilBlock",
)
ERR_HEIGHT_EXCEEDS_GOOD_TIL_BLOCK = ChainError(
    "clob", 10, "The next block height is greater than the GoodTilBlock of the message"
)
ERR_GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW = ChainError(
    "clob",
    11,
    "The GoodTilBlock of the message is further than ShortBlockWindow blocks into the future",
)
ERR_INVALID_PLACE_ORDER = ChainError("clob", 12, "MsgPlaceOrder is invalid")
ERR_INVALID_REPLACEMENT = ChainError("clob", 20, "Replacing an existing order failed")
ERR_ORDER_FULLY_FILLED = ChainError("clob", 24, "Order is fully filled")
ERR_INVALID_BATCH_CANCEL = ChainError("clob", 45, "Invalid batch cancel message")
ERR_BATCH_CANCEL_FAILED = ChainError("clob", 46, "Batch cancel has failed")
ERR_REDUCE_ONLY_WOULD_INCREASE_POSITION_SIZE = ChainError(
    "clob", 2001, "Reduce-only orders cannot increase the position size"
)
ERR_IMMEDIATE_EXECUTION_ORDER_ALREADY_FILLED = ChainError(
    "clob", 2004, "IOC order is already filled, remaining size is cancelled."
)
ERR_INVALID_ORDER_FLAG = ChainError("clob", 3000, "Invalid order flags")
ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME = ChainError(
    "clob", 3001, "Invalid order goodTilBlockTime"
)
ERR_LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION = ChainError(
    "clob", 3002, "Stateful orders cannot require immediate execution"
)
ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME = ChainError(
    "clob", 3003, "The block time is greater than the GoodTilBlockTime of the message"
)
ERR_GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW = ChainError(
    "clob",
    3004,
    "The GoodTilBlockTime of the message is further than StatefulOrderTimeWindow into the future",
)
ERR_STATEFUL_ORDER_ALREADY_EXISTS = ChainError(
    "clob", 3005, "Existing stateful order has higher-or-equal priority than the new one"
)
ERR_STATEFUL_ORDER_DOES_NOT_EXIST = ChainError("clob", 3006, "Stateful order does not exist")
ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED = ChainError(
    "clob", 3007, "Stateful order collateralization check failed"
)
ERR_STATEFUL_ORDER_PREVIOUSLY_CANCELLED = ChainError(
    "clob", 3008, "Stateful order was previously cancelled and therefore cannot be placed"
)
ERR_STATEFUL_ORDER_PREVIOUSLY_REMOVED = ChainError(
    "clob", 3009, "Stateful order was previously removed and therefore cannot be placed"
)
ERR_BLOCK_RATE_LIMIT_EXCEEDED = ChainError("clob", 5001, "Block rate limit exceeded")
ERR_INVALID_CONDITION_TYPE = ChainError("clob", 6000, "Conditional type is invalid")
ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS = ChainError(
    "clob", 6001, "Conditional order trigger subticks is invalid"
)
ERR_REDUCE_ONLY_DISABLED = ChainError(
    "clob", 9003, "Reduce-only is currently disabled for non-IOC orders"
)
ERR_FAILED_TO_UPDATE_SUBACCOUNTS = ChainError(
    "subaccounts", 102, "failed to apply subaccount updates"
)
ERR_INVALID_SUBACCOUNT_ID_NUMBER = ChainError(
    "subaccounts", 200, f"subaccount id number cannot exceed {MAX_SUBACCOUNT_NUMBER}"
)
ERR_INVALID_SUBACCOUNT_ID_OWNER = ChainError(
    "subaccounts", 201, "subaccount id owner is an invalid address"
)


# --------------------------------------------------------------------------------------------
# Formatting and ids shared with the Indexer
# --------------------------------------------------------------------------------------------


def subaccount_uuid(address: str, subaccount_number: int) -> str:
    """Indexer id of a subaccount: ``uuidv5("{address}-{n}")``."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{address}-{subaccount_number}"))


def order_uuid(
    address: str, subaccount_number: int, client_id: int, clob_pair_id: int, order_flags: int
) -> str:
    """Indexer id of an order (``order-table.ts uuid``)."""
    sub = subaccount_uuid(address, subaccount_number)
    name = f"{sub}-{client_id}-{clob_pair_id}-{order_flags}"
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, name))


def fmt_decimal(value: Decimal) -> str:
    """Format like big.js ``toFixed()``: plain notation, no trailing zeros, never ``-0``."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def iso(moment: datetime) -> str:
    """Format a UTC datetime as the Indexer does (``2025-11-12T11:19:52.470Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _round_usdc_up(value: Decimal) -> Decimal:
    return value.quantize(USDC_QUANTUM, rounding=ROUND_UP)


def _sign(value: Decimal | int) -> int:
    return (value > 0) - (value < 0)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

OrderKey = tuple[str, int, int, int, int]
"""(owner, subaccount number, client id, order flags, clob pair id) — the chain's OrderId."""
SubaccountKey = tuple[str, int]


def order_key(order_id: OrderId) -> OrderKey:
    """Turn a proto OrderId into a hashable key."""
    sub = order_id.subaccount_id
    return (sub.owner, sub.number, order_id.client_id, order_id.order_flags, order_id.clob_pair_id)


@dataclass
class Market:
    """A perpetual market and its CLOB pair (mainnet parameters).

    Attributes:
        ticker: e.g. ``"BTC-USD"``.
        clob_pair_id: CLOB pair id (also the perpetual id for the listed markets).
        market_id: Oracle market id.
        atomic_resolution: Base quantums are ``size * 10**-atomic_resolution``.
        quantum_conversion_exponent: Relates subticks to quote quantums.
        step_base_quantums: Order sizes are multiples of this.
        subticks_per_tick: Order prices are multiples of this.
        initial_margin_fraction: IMF of the liquidity tier.
        maintenance_margin_fraction: MMF of the liquidity tier.
        oracle_price: Current oracle price in USD.
    """

    ticker: str
    clob_pair_id: int
    market_id: int
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    initial_margin_fraction: Decimal
    maintenance_margin_fraction: Decimal
    oracle_price: Decimal
    oracle_effective_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    oracle_effective_height: int = 0
    status: str = "ACTIVE"
    market_type: str = "CROSS"
    open_interest_lower_cap: Decimal = Decimal(0)
    open_interest_upper_cap: Decimal = Decimal(0)

    @property
    def _price_exponent(self) -> int:
        # price = subticks * 10**(QCE - AR - 6)  (quote asset USDC has atomic resolution -6)
        return self.quantum_conversion_exponent - self.atomic_resolution - 6

    @property
    def tick_size(self) -> Decimal:
        """Price increment in USD."""
        return self.price_from_subticks(self.subticks_per_tick)

    @property
    def step_size(self) -> Decimal:
        """Size increment in base units."""
        return self.size_from_quantums(self.step_base_quantums)

    def size_from_quantums(self, quantums: int) -> Decimal:
        """Convert base quantums to a human size."""
        return Decimal(quantums).scaleb(self.atomic_resolution)

    def quantums_from_size(self, size: Decimal) -> int:
        """Convert a human size to base quantums (exact; rounds toward zero)."""
        return int(size.scaleb(-self.atomic_resolution).to_integral_value(rounding=ROUND_FLOOR))

    def price_from_subticks(self, subticks: int) -> Decimal:
        """Convert subticks to a USD price."""
        return Decimal(subticks).scaleb(self._price_exponent)

    def subticks_from_price(self, price: Decimal) -> int:
        """Convert a USD price to subticks (rounds down)."""
        return int(price.scaleb(-self._price_exponent).to_integral_value(rounding=ROUND_FLOOR))

    def round_to_tick(self, price: Decimal, *, up: bool) -> Decimal:
        """Round ``price`` to a whole tick (at least one tick)."""
        ticks = (price / self.tick_size).to_integral_value(
            rounding=ROUND_CEILING if up else ROUND_FLOOR
        )
        return max(ticks, Decimal(1)) * self.tick_size


def default_markets() -> dict[str, Market]:
    """BTC-USD, ETH-USD and SOL-USD with mainnet parameters (Indexer, Dec 2025)."""
    return {
        "BTC-USD": Market(
            ticker="BTC-USD",
            clob_pair_id=0,
            market_id=0,
            atomic_resolution=-10,
            quantum_conversion_exponent=-9,
            step_base_quantums=1_000_000,
            subticks_per_tick=100_000,
            initial_margin_fraction=Decimal("0.02"),
            maintenance_margin_fraction=Decimal("0.012"),
            oracle_price=Decimal("90000"),
        ),
        "ETH-USD": Market(
            ticker="ETH-USD",
            clob_pair_id=1,
            market_id=1,
            atomic_resolution=-9,
            quantum_conversion_exponent=-9,
            step_base_quantums=1_000_000,
            subticks_per_tick=100_000,
            initial_margin_fraction=Decimal("0.02"),
            maintenance_margin_fraction=Decimal("0.012"),
            oracle_price=Decimal("3000"),
        ),
        "SOL-USD": Market(
            ticker="SOL-USD",
            clob_pair_id=5,
            market_id=5,
            atomic_resolution=-7,
            quantum_conversion_exponent=-9,
            step_base_quantums=1_000_000,
            subticks_per_tick=1_000_000,
            initial_margin_fraction=Decimal("0.05"),
            maintenance_margin_fraction=Decimal("0.03"),
            oracle_price=Decimal("135"),
            open_interest_lower_cap=Decimal(40_000_000),
            open_interest_upper_cap=Decimal(100_000_000),
        ),
    }


@dataclass
class Account:
    """A cosmos x/auth account plus its x/accountplus timestamp-nonce details.

    Attributes:
        address: ``dydx1…`` address.
        account_number: Assigned on creation.
        sequence: Incremented by the node for each sequence-checked tx.
        pub_key: 33-byte compressed secp256k1 key once known.
        timestamp_nonces: The last accepted timestamp nonces (ms), at most 20, for the node's
            ±30 s / unique / greater-than-min checks.
        max_ejected_nonce: Largest nonce evicted from ``timestamp_nonces``.
    """

    address: str
    account_number: int
    sequence: int = 0
    pub_key: bytes | None = None
    timestamp_nonces: list[int] = field(default_factory=list)
    max_ejected_nonce: int = 0

    def record_timestamp_nonce(self, nonce: int) -> None:
        """Remember an accepted timestamp nonce, evicting the oldest beyond 20."""
        self.timestamp_nonces.append(nonce)
        self.timestamp_nonces.sort()
        while len(self.timestamp_nonces) > TIMESTAMP_NONCE_WINDOW:
            self.max_ejected_nonce = max(self.max_ejected_nonce, self.timestamp_nonces.pop(0))


@dataclass(frozen=True)
class AuthenticatorRecord:
    """An x/accountplus AccountAuthenticator (``id``, ``type``, raw ``config`` bytes)."""

    id: int
    type: str
    config: bytes


@dataclass
class PerpetualPosition:
    """A perpetual position as the Indexer tracks it (one OPEN per subaccount and market).

    ``size`` and ``max_size`` are signed (negative when short). Entry and exit prices are the
    volume-weighted averages of all opening and closing fills; realized PnL is
    ``(exit - entry) * sumClose`` for longs (mirrored for shorts) plus funding, as in comlink.
    """

    id: str
    address: str
    subaccount_number: int
    ticker: str
    side: str
    size: Decimal
    max_size: Decimal
    entry_price: Decimal
    sum_open: Decimal
    created_at: datetime
    created_at_height: int
    exit_price: Decimal | None = None
    sum_close: Decimal = Decimal(0)
    net_funding: Decimal = Decimal(0)
    status: str = POSITION_OPEN
    closed_at: datetime | None = None
    closed_at_height: int | None = None

    @property
    def realized_pnl(self) -> Decimal:
        """Realized PnL of the closed part (fees excluded, funding included)."""
        exit_price = self.exit_price if self.exit_price is not None else Decimal(0)
        diff = (
            exit_price - self.entry_price if self.side == "LONG" else self.entry_price - exit_price
        )
        return diff * self.sum_close + self.net_funding

    def unrealized_pnl(self, oracle_price: Decimal) -> Decimal:
        """Unrealized PnL of the open size at ``oracle_price``."""
        return self.size * (oracle_price - self.entry_price)


@dataclass(frozen=True)
class FundingPaymentRecord:
    """A funding payment of one position at a funding tick (``/v4/fundingPayments``).

    ``size`` is the position's absolute size and ``side`` its direction; ``payment`` is what
    the subaccount received (negative: paid), ``-signed size × oracle price × rate``.
    """

    address: str
    subaccount_number: int
    ticker: str
    perpetual_id: int
    oracle_price: Decimal
    size: Decimal
    side: str
    rate: Decimal
    payment: Decimal
    funding_index: Decimal
    created_at: datetime
    created_at_height: int


@dataclass
class TransferRecord:
    """A deposit to or withdrawal from a subaccount (Indexer transfer)."""

    id: str
    address: str
    subaccount_number: int
    size: Decimal
    type: str
    created_at: datetime
    created_at_height: int
    transaction_hash: str


@dataclass
class Subaccount:
    """A subaccount: its USDC asset position and its open perpetual positions."""

    address: str
    number: int
    created_at_height: int
    updated_at_height: int
    usdc: Decimal = Decimal(0)
    net_transfers: Decimal = Decimal(0)
    positions: dict[str, PerpetualPosition] = field(default_factory=dict)

    @property
    def key(self) -> SubaccountKey:
        """(address, number)."""
        return (self.address, self.number)

    @property
    def uuid(self) -> str:
        """Indexer subaccount id."""
        return subaccount_uuid(self.address, self.number)


@dataclass
class OrderRecord:
    """An order as the chain accepted it plus its Indexer lifecycle.

    Attributes:
        order: A private copy of the v4_proto Order.
        ticker: Market ticker of the order's CLOB pair.
        status: Indexer status (OPEN, FILLED, CANCELED, UNTRIGGERED, BEST_EFFORT_OPENED…).
        filled_quantums: Base quantums filled so far.
        created_at_height: Height at which the order was accepted.
        updated_at: Time of the last change.
        updated_at_height: Height of the last change.
        removal_reason: Why the order left the book, if it did.
        triggered_at_height: For conditional orders, the height of the trigger.
    """

    order: Order
    ticker: str
    status: str
    created_at_height: int
    updated_at: datetime
    updated_at_height: int
    filled_quantums: int = 0
    removal_reason: str | None = None
    triggered_at_height: int | None = None

    @property
    def key(self) -> OrderKey:
        """Chain OrderId as a tuple."""
        return order_key(self.order.order_id)

    @property
    def id(self) -> str:
        """Indexer order id."""
        owner, number, client_id, flags, clob_pair_id = self.key
        return order_uuid(owner, number, client_id, clob_pair_id, flags)

    @property
    def address(self) -> str:
        """Owner address."""
        return self.order.order_id.subaccount_id.owner

    @property
    def subaccount_number(self) -> int:
        """Subaccount number."""
        return self.order.order_id.subaccount_id.number

    @property
    def flags(self) -> int:
        """Order flags (0 short-term, 32 conditional, 64 long-term)."""
        return self.order.order_id.order_flags

    @property
    def is_short_term(self) -> bool:
        """True for short-term orders."""
        return self.flags == ORDER_FLAG_SHORT_TERM

    @property
    def is_conditional(self) -> bool:
        """True for conditional orders."""
        return self.flags == ORDER_FLAG_CONDITIONAL

    @property
    def is_buy(self) -> bool:
        """True for buys."""
        return self.order.side == SIDE_BUY

    @property
    def requires_immediate_execution(self) -> bool:
        """IOC and (deprecated) FOK orders never rest."""
        return self.order.time_in_force in (TIF_IOC, TIF_FOK)

    @property
    def remaining_quantums(self) -> int:
        """Unfilled base quantums."""
        return self.order.quantums - self.filled_quantums

    @property
    def is_live(self) -> bool:
        """Still on the book (resting, pending or untriggered)."""
        return self.status in LIVE_STATUSES


@dataclass
class FillRecord:
    """A fill of one of our orders against the double's counterparty."""

    id: str
    address: str
    subaccount_number: int
    ticker: str
    clob_pair_id: int
    side: str
    liquidity: str
    price: Decimal
    size: Decimal
    fee: Decimal
    created_at: datetime
    created_at_height: int
    order_id: str
    client_metadata: int
    type: str = "LIMIT"

    @property
    def quote_amount(self) -> Decimal:
        """price * size."""
        return self.price * self.size


@dataclass(frozen=True)
class PnlTick:
    """An hourly-style equity snapshot (``/v4/historical-pnl``)."""

    id: str
    address: str
    subaccount_number: int
    equity: Decimal
    total_pnl: Decimal
    net_transfers: Decimal
    created_at: datetime
    block_height: int
    block_time: datetime


@dataclass(frozen=True)
class TxLogEntry:
    """Every message the state saw, in order, with its result."""

    height: int
    kind: str
    key: OrderKey | SubaccountKey | None
    code: int


@dataclass(frozen=True)
class PendingStatefulOrder:
    """A stateful order CheckTx accepted, waiting for DeliverTx in the next block."""

    order: Order
    tx_hash: str | None
    checked_at_height: int


@dataclass(frozen=True)
class DeliveryFailure:
    """A stateful order that passed CheckTx but failed in DeliverTx (no Indexer event)."""

    height: int
    key: OrderKey
    tx_hash: str | None
    result: TxResult


# --------------------------------------------------------------------------------------------
# Events for the Indexer WebSocket
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubaccountUpdate:
    """Changes to one subaccount produced by one operation (one ``v4_subaccounts`` message)."""

    address: str
    subaccount_number: int
    height: int
    orders: tuple[OrderRecord, ...] = ()
    fills: tuple[FillRecord, ...] = ()
    positions: tuple[PerpetualPosition, ...] = ()
    asset_changed: bool = False
    transfers: tuple[TransferRecord, ...] = ()


@dataclass(frozen=True)
class OraclePriceUpdate:
    """A new oracle price (``v4_markets`` ``oraclePrices``)."""

    ticker: str
    market_id: int
    price: Decimal
    effective_at: datetime
    effective_at_height: int


@dataclass(frozen=True)
class BlockUpdate:
    """A committed block (``v4_block_height``)."""

    height: int
    time: datetime


ChainEvent = SubaccountUpdate | OraclePriceUpdate | BlockUpdate
Listener = Callable[[ChainEvent], None]


@dataclass
class _UpdateBuilder:
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    fills: list[FillRecord] = field(default_factory=list)
    positions: dict[str, PerpetualPosition] = field(default_factory=dict)
    asset_changed: bool = False
    transfers: list[TransferRecord] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The state
# --------------------------------------------------------------------------------------------


class ChainState:
    """The whole exchange: chain state (x/auth, x/accountplus, x/clob, x/subaccounts) and what
    the Indexer derives from it.

    Args:
        chain_id: Chain id reported by the node.
        height: Height of the last committed block at start.
        clock: Source of wall-clock time for block times (UTC, tz-aware).
        markets: Markets to list; defaults to :func:`default_markets`.
        pnl_interval_blocks: Record a historical-pnl tick every this many blocks (0 disables).
        short_term_fill_next_block: If True, short-term orders are accepted as
            ``BEST_EFFORT_OPENED`` and only matched at the next block, like a real proposer.
        stateful_orders_next_block: If True, stateful orders that pass CheckTx are only
            placed by DeliverTx in the next block, which repeats the stateful validation and
            the collateral check and may fail (see :attr:`delivery_failures`). False places
            them at once, as before.
    """

    def __init__(
        self,
        *,
        chain_id: str = "localdydxprotocol",
        height: int = 1000,
        clock: Callable[[], datetime] | None = None,
        markets: dict[str, Market] | None = None,
        pnl_interval_blocks: int = 10,
        short_term_fill_next_block: bool = False,
        stateful_orders_next_block: bool = False,
    ) -> None:
        self.chain_id = chain_id
        self.height = height
        self._clock = clock or (lambda: datetime.now(UTC))
        self.block_time: datetime = self._clock()
        self._previous_block_time = self.block_time
        self.markets: dict[str, Market] = markets if markets is not None else default_markets()
        for market in self.markets.values():
            market.oracle_effective_at = self.block_time
            market.oracle_effective_height = height
        self.pnl_interval_blocks = pnl_interval_blocks
        self.short_term_fill_next_block = short_term_fill_next_block
        self.stateful_orders_next_block = stateful_orders_next_block
        #: Bumped by every delivered batch of events (lets the Indexer snapshot only changes).
        self.revision = 0
        #: Hash of the transaction being checked, set by the node around a clob message.
        self.current_tx_hash: str | None = None
        #: DeliverTx results of failed stateful placements by tx hash (GetTx shows them).
        self.deliver_results: dict[str, TxResult] = {}
        self.delivery_failures: list[DeliveryFailure] = []
        self._pending_stateful: list[PendingStatefulOrder] = []
        # Stateful cancels CheckTx accepted since the last block (uncommitted cancellations).
        self._uncommitted_stateful_cancels: set[OrderKey] = set()
        # Stateful orders removed in the block being built (ProcessProposerMatchesEvents).
        self._removed_stateful_this_block: set[OrderKey] = set()

        self.accounts: dict[str, Account] = {}
        self._next_account_number = 1
        self._authenticators: dict[str, dict[int, AuthenticatorRecord]] = {}
        self._next_authenticator_id = 0

        self.subaccounts: dict[SubaccountKey, Subaccount] = {}
        self.orders: dict[str, OrderRecord] = {}
        self.fills: list[FillRecord] = []
        self.positions: list[PerpetualPosition] = []
        self.transfers: list[TransferRecord] = []
        self.pnl_ticks: list[PnlTick] = []
        self.funding_payments: list[FundingPaymentRecord] = []
        self._funding_index: dict[str, Decimal] = {}
        self.tx_log: list[TxLogEntry] = []
        self.oracle_history: dict[str, deque[tuple[datetime, Decimal]]] = {
            ticker: deque([(self.block_time, m.oracle_price)], maxlen=10_000)
            for ticker, m in self.markets.items()
        }

        # Memclob bookkeeping for short-term orders.
        self._short_term_cancels: dict[OrderKey, int] = {}
        self._short_term_fills: dict[OrderKey, tuple[int, int]] = {}
        self._matched_this_block: dict[OrderKey, Order] = {}
        self._pending_short_term: list[str] = []
        self._triggered_pending: list[str] = []
        self._rate_counters: dict[tuple[str, str], deque[int]] = {}
        self._serial = 0

        self._listeners: list[Listener] = []
        self._batch_depth = 0
        self._pending_updates: dict[SubaccountKey, _UpdateBuilder] = {}
        self._outbox: list[ChainEvent] = []

    # ---------------------------------------------------------------- time, blocks, events

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every :data:`ChainEvent`; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Collect the events of one operation and deliver them when it ends."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._flush()

    def _emit(self, event: ChainEvent) -> None:
        self._drain_updates()
        self._outbox.append(event)

    def _drain_updates(self) -> None:
        for (address, number), b in self._pending_updates.items():
            self._outbox.append(
                SubaccountUpdate(
                    address=address,
                    subaccount_number=number,
                    height=self.height,
                    orders=tuple(b.orders.values()),
                    fills=tuple(b.fills),
                    positions=tuple(b.positions.values()),
                    asset_changed=b.asset_changed,
                    transfers=tuple(b.transfers),
                )
            )
        self._pending_updates.clear()

    def _flush(self) -> None:
        self._drain_updates()
        if self._outbox:
            self.revision += 1
        outbox, self._outbox = self._outbox, []
        for event in outbox:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a broken listener must not corrupt the chain
                    log.exception("dYdX double: event listener failed")

    def _update(self, key: SubaccountKey) -> _UpdateBuilder:
        return self._pending_updates.setdefault(key, _UpdateBuilder())

    def _touch_order(self, record: OrderRecord) -> None:
        record.updated_at = self.block_time
        record.updated_at_height = self.height
        self._update((record.address, record.subaccount_number)).orders[record.id] = record

    def advance_block(self, block_time: datetime | None = None) -> int:
        """Commit the next block and run the EndBlocker work.

        Order of work: DeliverTx of the stateful orders CheckTx accepted (when
        ``stateful_orders_next_block``), execute conditional orders triggered in the previous
        block, match
        pending short-term orders, fill resting orders the oracle crossed, expire short-term
        orders past their good_til_block and stateful orders past their good_til_block_time,
        trigger conditional orders, and record a historical-pnl tick every
        ``pnl_interval_blocks`` blocks.

        Args:
            block_time: Time of the new block; defaults to the clock (never before the
                previous block).

        Returns:
            The new height.
        """
        with self._batch():
            self.height += 1
            self._previous_block_time = self.block_time
            candidate = block_time or self._clock()
            self.block_time = max(candidate, self.block_time + timedelta(microseconds=1))
            self._matched_this_block.clear()
            # Removals since the last delivery belong to this block's proposed operations,
            # which DeliverTx of a stateful placement checks (ErrStatefulOrderPreviouslyRemoved).
            self._deliver_pending_stateful()
            self._removed_stateful_this_block.clear()
            self._uncommitted_stateful_cancels.clear()

            triggered, self._triggered_pending = self._triggered_pending, []
            for order_id in triggered:
                record = self.orders.get(order_id)
                if record is not None and record.is_live:
                    self._execute_taker(record)

            pending, self._pending_short_term = self._pending_short_term, []
            for order_id in pending:
                record = self.orders.get(order_id)
                if record is not None and record.is_live:
                    self._execute_taker(record)

            self._match_resting_orders()
            self._expire_orders()
            self._trigger_conditional_orders()
            if self.pnl_interval_blocks and self.height % self.pnl_interval_blocks == 0:
                self.record_pnl_snapshot()
            self._emit(BlockUpdate(self.height, self.block_time))
        return self.height

    def advance_blocks(self, n: int) -> int:
        """Commit ``n`` blocks; returns the new height."""
        for _ in range(n):
            self.advance_block()
        return self.height

    # ---------------------------------------------------------------- markets and oracle

    def market_by_clob_pair(self, clob_pair_id: int) -> Market | None:
        """The market whose CLOB pair id is ``clob_pair_id``."""
        for market in self.markets.values():
            if market.clob_pair_id == clob_pair_id:
                return market
        return None

    def set_oracle_price(self, ticker: str, price: Decimal) -> None:
        """Set a market's oracle price; crossings take effect at the next block.

        Raises:
            KeyError: Unknown ticker.
            ValueError: Price not positive.
        """
        market = self.markets[ticker]
        price = Decimal(price)
        if price <= 0:
            raise ValueError("Oracle price must be > 0.")
        with self._batch():
            market.oracle_price = price
            market.oracle_effective_at = self.block_time
            market.oracle_effective_height = self.height
            self.oracle_history[ticker].append((self._clock(), price))
            self._emit(
                OraclePriceUpdate(ticker, market.market_id, price, self.block_time, self.height)
            )

    # ---------------------------------------------------------------- accounts

    def create_account(self, address: str, pub_key: bytes | None = None) -> Account:
        """Create (or return the existing) x/auth account of ``address``.

        Raises:
            ValueError: ``address`` is not a dydx bech32 address.
        """
        if not is_valid_address(address):
            raise ValueError(f"invalid dydx address {address!r}")
        account = self.accounts.get(address)
        if account is None:
            account = Account(address, self._next_account_number, pub_key=pub_key)
            self._next_account_number += 1
            self.accounts[address] = account
        elif pub_key is not None and account.pub_key is None:
            account.pub_key = pub_key
        return account

    def get_account(self, address: str) -> Account | None:
        """The account of ``address`` if it exists."""
        return self.accounts.get(address)

    # ---------------------------------------------------------------- authenticators

    def add_authenticator(self, owner: str, auth_type: str, config: bytes) -> int:
        """Add an authenticator like ``MsgAddAuthenticator``; returns its global id.

        Raises:
            AuthenticatorError: Unknown type or invalid config (chain's message).
        """
        validate_authenticator(auth_type, config)
        auth_id = self._next_authenticator_id
        self._next_authenticator_id += 1
        self._authenticators.setdefault(owner, {})[auth_id] = AuthenticatorRecord(
            auth_id, auth_type, bytes(config)
        )
        return auth_id

    def add_unvalidated_authenticator(self, owner: str, auth_type: str, config: bytes) -> int:
        """Store an authenticator without this double's validation: one a newer chain
        accepts (a type added by an upgrade) that our client does not know."""
        auth_id = self._next_authenticator_id
        self._next_authenticator_id += 1
        self._authenticators.setdefault(owner, {})[auth_id] = AuthenticatorRecord(
            auth_id, auth_type, bytes(config)
        )
        return auth_id

    @property
    def next_authenticator_id(self) -> int:
        """Id the next added authenticator will get (the chain's global counter)."""
        return self._next_authenticator_id

    def remove_authenticator(self, owner: str, authenticator_id: int) -> None:
        """Remove an authenticator like ``MsgRemoveAuthenticator``.

        Raises:
            AuthenticatorError: No such authenticator for ``owner``.
        """
        owned = self._authenticators.get(owner, {})
        if authenticator_id not in owned:
            raise AuthenticatorError(
                f"authenticator with id {authenticator_id} does not exist for account {owner}"
            )
        del owned[authenticator_id]

    def get_authenticators(self, owner: str) -> list[AuthenticatorRecord]:
        """Authenticators of ``owner`` ordered by id."""
        return sorted(self._authenticators.get(owner, {}).values(), key=lambda a: a.id)

    def get_authenticator(self, owner: str, authenticator_id: int) -> AuthenticatorRecord | None:
        """One authenticator of ``owner`` if it exists."""
        return self._authenticators.get(owner, {}).get(authenticator_id)

    # ---------------------------------------------------------------- subaccounts

    def get_subaccount(self, address: str, number: int) -> Subaccount | None:
        """The subaccount if it was ever funded."""
        return self.subaccounts.get((address, number))

    def deposit(self, address: str, subaccount_number: int, usdc: Decimal) -> Subaccount:
        """Deposit USDC into a subaccount (creating account and subaccount as needed)."""
        amount = Decimal(usdc)
        if amount <= 0:
            raise ValueError("deposit must be positive")
        with self._batch():
            self.create_account(address)
            sub = self._subaccount(address, subaccount_number)
            sub.usdc += amount
            sub.net_transfers += amount
            self._record_transfer(sub, amount, "DEPOSIT")
        return sub

    def withdraw(self, address: str, subaccount_number: int, usdc: Decimal) -> TxResult:
        """Withdraw USDC if the subaccount stays collateralized (``MsgWithdrawFromSubaccount``)."""
        amount = Decimal(usdc)
        sub = self.subaccounts.get((address, subaccount_number))
        if amount <= 0 or sub is None:
            return ERR_FAILED_TO_UPDATE_SUBACCOUNTS.result("nothing to withdraw")
        if self.equity(sub) - amount < self.initial_margin(sub):
            result = ERR_FAILED_TO_UPDATE_SUBACCOUNTS.result(
                f"withdrawal of {amount} USDC would undercollateralize subaccount "
                f"{address}/{subaccount_number}"
            )
        else:
            with self._batch():
                sub.usdc -= amount
                sub.net_transfers -= amount
                self._record_transfer(sub, -amount, "WITHDRAWAL")
            result = OK
        self.tx_log.append(TxLogEntry(self.height, "withdraw", sub.key, result.code))
        return result

    def pay_funding(self, rates: dict[str, Decimal]) -> list[FundingPaymentRecord]:
        """Settle a funding tick: every open position in a market of ``rates`` pays (or
        receives) ``signed size × oracle price × rate`` from its USDC, counted in the
        position's net funding and recorded for the Indexer.

        Args:
            rates: The funding rate of the tick by market (positive: longs pay shorts).
        """
        paid: list[FundingPaymentRecord] = []
        with self._batch():
            for ticker, rate in rates.items():
                market = self.markets[ticker]
                index = self._funding_index.get(ticker, Decimal(0)) + rate * market.oracle_price
                self._funding_index[ticker] = index
                for sub in self.subaccounts.values():
                    position = sub.positions.get(ticker)
                    if position is None or position.size == 0:
                        continue
                    payment = -position.size * market.oracle_price * rate
                    record = FundingPaymentRecord(
                        address=sub.address,
                        subaccount_number=sub.number,
                        ticker=ticker,
                        perpetual_id=market.clob_pair_id,
                        oracle_price=market.oracle_price,
                        size=abs(position.size),
                        side=position.side,
                        rate=rate,
                        payment=payment,
                        funding_index=index,
                        created_at=self.block_time,
                        created_at_height=self.height,
                    )
                    sub.usdc += payment
                    position.net_funding += payment
                    sub.updated_at_height = self.height
                    update = self._update(sub.key)
                    update.asset_changed = True
                    update.positions[position.id] = position
                    self.funding_payments.append(record)
                    paid.append(record)
        return paid

    def _subaccount(self, address: str, number: int) -> Subaccount:
        sub = self.subaccounts.get((address, number))
        if sub is None:
            sub = Subaccount(address, number, self.height, self.height)
            self.subaccounts[sub.key] = sub
        return sub

    def _record_transfer(self, sub: Subaccount, amount: Decimal, kind: str) -> None:
        serial = self._next_serial()
        transfer = TransferRecord(
            id=str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"transfer-{serial}")),
            address=sub.address,
            subaccount_number=sub.number,
            size=abs(amount),
            type=kind,
            created_at=self.block_time,
            created_at_height=self.height,
            transaction_hash=uuid.uuid5(INDEXER_UUID_NAMESPACE, f"tx-{serial}").hex.upper() * 2,
        )
        self.transfers.append(transfer)
        sub.updated_at_height = self.height
        update = self._update(sub.key)
        update.asset_changed = True
        update.transfers.append(transfer)

    def equity(self, sub: Subaccount) -> Decimal:
        """USDC plus the oracle value of every open position."""
        return sub.usdc + sum(
            (p.size * self.markets[p.ticker].oracle_price for p in sub.positions.values()),
            Decimal(0),
        )

    def initial_margin(self, sub: Subaccount) -> Decimal:
        """Initial margin requirement of the open positions."""
        return sum(
            (
                abs(p.size)
                * self.markets[p.ticker].oracle_price
                * self.markets[p.ticker].initial_margin_fraction
                for p in sub.positions.values()
            ),
            Decimal(0),
        )

    def maintenance_margin(self, sub: Subaccount) -> Decimal:
        """Maintenance margin requirement of the open positions."""
        return sum(
            (
                abs(p.size)
                * self.markets[p.ticker].oracle_price
                * self.markets[p.ticker].maintenance_margin_fraction
                for p in sub.positions.values()
            ),
            Decimal(0),
        )

    def free_collateral(self, sub: Subaccount) -> Decimal:
        """Equity minus initial margin (what the Indexer calls freeCollateral)."""
        return self.equity(sub) - self.initial_margin(sub)

    def position_size(self, address: str, number: int, ticker: str) -> Decimal:
        """Signed open position size (0 if none)."""
        sub = self.subaccounts.get((address, number))
        if sub is None or ticker not in sub.positions:
            return Decimal(0)
        return sub.positions[ticker].size

    def record_pnl_snapshot(self) -> None:
        """Record a historical-pnl tick for every subaccount now."""
        for sub in self.subaccounts.values():
            equity = self.equity(sub)
            self.pnl_ticks.append(
                PnlTick(
                    id=str(
                        uuid.uuid5(INDEXER_UUID_NAMESPACE, f"pnl-{sub.uuid}-{self._next_serial()}")
                    ),
                    address=sub.address,
                    subaccount_number=sub.number,
                    equity=equity,
                    total_pnl=equity - sub.net_transfers,
                    net_transfers=sub.net_transfers,
                    created_at=self.block_time,
                    block_height=self.height,
                    block_time=self.block_time,
                )
            )

    # ---------------------------------------------------------------- order placement

    def place_order(self, order: Order) -> TxResult:
        """Process ``MsgPlaceOrder`` as CheckTx (and, for the double, its matching).

        Args:
            order: The v4_proto ``dydxprotocol.clob.Order``; it is copied.

        Returns:
            The CheckTx result with the chain's error code on refusal.
        """
        with self._batch():
            result = self._place_order(order)
        self.tx_log.append(
            TxLogEntry(self.height, "place_order", order_key(order.order_id), result.code)
        )
        return result

    def _place_order(self, order: Order) -> TxResult:
        error = self._validate_basic(order)
        if error is not None:
            return error
        order_id = order.order_id
        flags = order_id.order_flags
        market = self.market_by_clob_pair(order_id.clob_pair_id)
        if market is None:
            return ERR_INVALID_CLOB.result(f"Clob {order_id.clob_pair_id} is not a valid clob")
        limited = self._rate_limit(order_id.subaccount_id.owner, flags != ORDER_FLAG_SHORT_TERM)
        if limited is not None:
            return limited
        if order.subticks % market.subticks_per_tick:
            return ERR_INVALID_PLACE_ORDER.result(
                f"Order subticks {order.subticks} must be a multiple of the ClobPair's "
                f"SubticksPerTick {market.subticks_per_tick}"
            )
        if order.quantums % market.step_base_quantums:
            return ERR_INVALID_PLACE_ORDER.result(
                f"Order Quantums {order.quantums} must be a multiple of the ClobPair's "
                f"StepBaseQuantums {market.step_base_quantums}"
            )
        if flags == ORDER_FLAG_SHORT_TERM:
            error = self._validate_good_til_block(order.good_til_block)
            return error if error is not None else self._place_short_term(order, market)
        return self._place_stateful(order, market)

    def _validate_basic(self, order: Order) -> TxResult | None:
        """``MsgPlaceOrder.ValidateBasic``."""
        sub_id = order.order_id.subaccount_id
        if not is_valid_address(sub_id.owner):
            return ERR_INVALID_SUBACCOUNT_ID_OWNER.result(sub_id.owner)
        if sub_id.number > MAX_SUBACCOUNT_NUMBER:
            return ERR_INVALID_SUBACCOUNT_ID_NUMBER.result(str(sub_id.number))
        if order.side not in (SIDE_BUY, SIDE_SELL):
            return ERR_INVALID_ORDER_SIDE.result(f"Order side {order.side}")
        if order.quantums == 0:
            return ERR_INVALID_ORDER_QUANTUMS.result("Order quantums cannot be 0")
        flags = order.order_id.order_flags
        if flags not in (ORDER_FLAG_SHORT_TERM, ORDER_FLAG_CONDITIONAL, ORDER_FLAG_LONG_TERM):
            detail = (
                "TWAP orders are not supported by the double" if flags == ORDER_FLAG_TWAP else ""
            )
            return ERR_INVALID_ORDER_FLAG.result(detail or f"Order flags {flags}")
        immediate = order.time_in_force in (TIF_IOC, TIF_FOK)
        good_til = order.WhichOneof("good_til_oneof")
        if flags == ORDER_FLAG_SHORT_TERM:
            if good_til != "good_til_block" or order.good_til_block == 0:
                return ERR_INVALID_ORDER_GOOD_TIL_BLOCK.result(
                    "goodTilBlock cannot be 0 for a short-term order"
                )
        else:
            if good_til != "good_til_block_time" or order.good_til_block_time == 0:
                return ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME.result(
                    "stateful orders must have a goodTilBlockTime"
                )
            if flags == ORDER_FLAG_LONG_TERM and immediate:
                return ERR_LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION.result(
                    f"Order: {order_key(order.order_id)}"
                )
        if order.subticks == 0:
            return ERR_INVALID_ORDER_SUBTICKS.result("Order subticks cannot be 0")
        if order.reduce_only and not immediate:
            return ERR_REDUCE_ONLY_DISABLED.result(
                "reduce only orders must be short term IOC orders"
            )
        if flags == ORDER_FLAG_CONDITIONAL:
            if order.condition_type == CONDITION_UNSPECIFIED:
                return ERR_INVALID_CONDITION_TYPE.result(
                    "conditional orders must have a condition type"
                )
            if order.conditional_order_trigger_subticks == 0:
                return ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS.result(
                    "conditional orders must have trigger subticks"
                )
        else:
            if order.condition_type != CONDITION_UNSPECIFIED:
                return ERR_INVALID_CONDITION_TYPE.result(
                    "non-conditional orders must have an unspecified condition type"
                )
            if order.conditional_order_trigger_subticks != 0:
                return ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS.result(
                    "non-conditional orders must have zero trigger subticks"
                )
        return None

    def _validate_good_til_block(self, good_til_block: int) -> TxResult | None:
        # The next block is height + 1: it is the first one the order could be included in.
        if good_til_block <= self.height:
            return ERR_HEIGHT_EXCEEDS_GOOD_TIL_BLOCK.result(
                f"GoodTilBlock {good_til_block} is less than the current blockHeight "
                f"{self.height + 1}"
            )
        if good_til_block > self.height + SHORT_BLOCK_WINDOW:
            return ERR_GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW.result(
                f"The GoodTilBlock {good_til_block} exceeds the current blockHeight "
                f"{self.height} plus ShortBlockWindow {SHORT_BLOCK_WINDOW}"
            )
        return None

    def _validate_good_til_block_time(self, good_til_block_time: int) -> TxResult | None:
        now = int(self.block_time.timestamp())
        if good_til_block_time <= now:
            return ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME.result(
                f"GoodTilBlockTime {good_til_block_time} is less than the previous blockTime {now}"
            )
        end = int((self.block_time + STATEFUL_ORDER_TIME_WINDOW).timestamp())
        if good_til_block_time > end:
            return ERR_GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW.result(
                f"GoodTilBlockTime {good_til_block_time} exceeds the previous blockTime plus "
                f"StatefulOrderTimeWindow {end}"
            )
        return None

    def _rate_limit(self, owner: str, stateful: bool, weight: int = 1) -> TxResult | None:
        """x/clob block rate limits per owner address (stateful orders; short-term places,
        cancels and batch cancels).

        Like ``multiBlockRateLimiter.RateLimitIncrBy`` the message is counted before the
        check, so refused messages count too: retrying while limited prolongs the limit.
        """
        kind = "stateful" if stateful else "short_term"
        limits = STATEFUL_ORDER_RATE_LIMITS if stateful else SHORT_TERM_RATE_LIMITS
        name = (
            "MaxStatefulOrdersPerNBlocks" if stateful else "MaxShortTermOrdersAndCancelsPerNBlocks"
        )
        window = max(blocks for blocks, _ in limits)
        heights = self._rate_counters.setdefault((owner, kind), deque())
        # A message in CheckTx counts towards the next block.
        next_height = self.height + 1
        while heights and heights[0] <= next_height - window:
            heights.popleft()
        heights.extend([next_height] * weight)
        for blocks, limit in limits:
            count = sum(1 for h in heights if h > next_height - blocks)
            if count > limit:
                return ERR_BLOCK_RATE_LIMIT_EXCEEDED.result(
                    f"Rate of {count} exceeds configured block rate limit of "
                    f"{{NumBlocks:{blocks} Limit:{limit}}} for {name} and {owner}"
                )
        return None

    def _live_short_term(self, key: OrderKey) -> OrderRecord | None:
        owner, number, client_id, flags, clob_pair_id = key
        record = self.orders.get(order_uuid(owner, number, client_id, clob_pair_id, flags))
        if record is not None and record.is_live:
            return record
        return None

    def _place_short_term(self, order: Order, market: Market) -> TxResult:
        """memclob ``validateNewOrder`` then placement."""
        key = order_key(order.order_id)
        cancel_until = self._short_term_cancels.get(key)
        if cancel_until is not None and cancel_until >= order.good_til_block:
            return ERR_ORDER_IS_CANCELED.result(
                f"Order: {key}, Cancellation GoodTilBlock: {cancel_until}"
            )
        existing_record = self._live_short_term(key)
        existing = existing_record.order if existing_record else self._matched_this_block.get(key)
        if existing is not None:
            error = self._validate_replacement(existing, order)
            if error is not None:
                return error
        filled, _ = self._short_term_fills.get(key, (0, 0))
        remaining = order.quantums - filled
        if remaining < market.step_base_quantums:
            return ERR_ORDER_FULLY_FILLED.result(
                "Order remaining amount is less than `MinOrderBaseQuantums`. Remaining amount: "
                f"{max(remaining, 0)}. Order: {key}"
            )
        if order.reduce_only:
            position = self.position_size(key[0], key[1], market.ticker)
            direction = 1 if order.side == SIDE_BUY else -1
            if direction * _sign(position) != -1:
                return ERR_REDUCE_ONLY_WOULD_INCREASE_POSITION_SIZE.result()
        if order.time_in_force in (TIF_IOC, TIF_FOK) and remaining < order.quantums:
            if existing_record is not None:
                return ERR_INVALID_REPLACEMENT.result(
                    "Cannot replace partially filled order with IOC order"
                )
            return ERR_IMMEDIATE_EXECUTION_ORDER_ALREADY_FILLED.result(f"Order: {key}")

        record = self._store_order(order, market, STATUS_BEST_EFFORT_OPENED)
        record.filled_quantums = filled
        if self.short_term_fill_next_block:
            self._pending_short_term.append(record.id)
        else:
            self._execute_taker(record)
        return OK

    @staticmethod
    def _validate_replacement(existing: Order, new: Order) -> TxResult | None:
        if new.good_til_block <= existing.good_til_block:
            return ERR_INVALID_REPLACEMENT.result(
                f"Replacement order GoodTilBlock {new.good_til_block} must be greater than the "
                f"existing order's GoodTilBlock {existing.good_til_block}"
            )
        if existing.side != new.side:
            return ERR_INVALID_REPLACEMENT.result(
                "New order cannot change the Side of the existing order"
            )
        if existing.time_in_force != new.time_in_force:
            return ERR_INVALID_REPLACEMENT.result(
                "New order cannot change the TimeInForce of the existing order"
            )
        if existing.reduce_only != new.reduce_only:
            return ERR_INVALID_REPLACEMENT.result(
                "New order cannot change the ReduceOnly field of the existing order"
            )
        return None

    def _place_stateful(self, order: Order, market: Market) -> TxResult:
        """``PlaceStatefulOrder`` in CheckTx (long-term and conditional)."""
        error = self._validate_good_til_block_time(order.good_til_block_time)
        if error is None:
            error = self._stateful_validation(order, market, check_tx=True)
        if error is not None:
            return error
        if self.stateful_orders_next_block:
            copy = Order()
            copy.CopyFrom(order)
            self._pending_stateful.append(
                PendingStatefulOrder(copy, self.current_tx_hash, self.height)
            )
            return OK
        self._add_stateful(order, market)
        return OK

    def _stateful_validation(
        self, order: Order, market: Market, *, check_tx: bool
    ) -> TxResult | None:
        """``PerformStatefulOrderValidation`` (id checks) and the collateral check."""
        key = order_key(order.order_id)
        owner, number, client_id, flags, clob_pair_id = key
        if check_tx and key in self._uncommitted_stateful_cancels:
            return ERR_STATEFUL_ORDER_PREVIOUSLY_CANCELLED.result(
                "An uncommitted stateful order cancellation with this OrderId already exists. "
                f"Order: {key}"
            )
        if not check_tx and key in self._removed_stateful_this_block:
            return ERR_STATEFUL_ORDER_PREVIOUSLY_REMOVED.result(f"PlaceOrder: order ({key})")
        if check_tx and any(order_key(p.order.order_id) == key for p in self._pending_stateful):
            return ERR_STATEFUL_ORDER_ALREADY_EXISTS.result(
                "An uncommitted stateful order with this OrderId already exists and stateful "
                "order replacement is not supported."
            )
        existing = self.orders.get(order_uuid(owner, number, client_id, clob_pair_id, flags))
        if existing is not None and existing.is_live:
            return ERR_STATEFUL_ORDER_ALREADY_EXISTS.result(
                "A stateful order with this OrderId already exists and stateful order "
                "replacement is not supported. Existing order GoodTilBlockTime "
                f"({existing.order.good_til_block_time}), New order GoodTilBlockTime "
                f"({order.good_til_block_time})."
            )
        if (
            flags == ORDER_FLAG_CONDITIONAL
            and order.conditional_order_trigger_subticks % market.subticks_per_tick
        ):
            return ERR_INVALID_PLACE_ORDER.result(
                f"Conditional order trigger subticks {order.conditional_order_trigger_subticks} "
                f"must be a multiple of the ClobPair's SubticksPerTick {market.subticks_per_tick}"
            )
        # Collateral check for the full size at the order's price, to mitigate spam. It runs
        # in CheckTx and again in DeliverTx, against the state of the moment.
        sub = self._subaccount_or_empty(owner, number)
        price = market.price_from_subticks(order.subticks)
        size = market.size_from_quantums(order.quantums)
        delta = size if order.side == SIDE_BUY else -size
        if not self._collateralized_after(sub, market, delta, price, MAKER_FEE_RATE):
            return ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED.result(
                f"PlaceStatefulOrder: order ({key}), result (NewlyUndercollateralized)"
            )
        return None

    def _add_stateful(self, order: Order, market: Market) -> None:
        if order.order_id.order_flags == ORDER_FLAG_CONDITIONAL:
            self._store_order(order, market, STATUS_UNTRIGGERED)
        else:
            self._execute_taker(self._store_order(order, market, STATUS_OPEN))

    def _deliver_pending_stateful(self) -> None:
        """DeliverTx of the stateful orders CheckTx accepted since the last block.

        A failure is only a failed tx result (``GetTx``): the chain emits no Indexer event, so
        the order never shows on the Indexer.
        """
        pending, self._pending_stateful = self._pending_stateful, []
        for item in pending:
            market = self.market_by_clob_pair(item.order.order_id.clob_pair_id)
            assert market is not None  # CheckTx checked the clob pair
            error = self._stateful_validation(item.order, market, check_tx=False)
            if error is None and item.order.good_til_block_time <= int(
                self._previous_block_time.timestamp()
            ):
                error = ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME.result(
                    f"GoodTilBlockTime {item.order.good_til_block_time} is less than the "
                    "previous blockTime"
                )
            if error is None:
                self._add_stateful(item.order, market)
                continue
            key = order_key(item.order.order_id)
            self.delivery_failures.append(DeliveryFailure(self.height, key, item.tx_hash, error))
            if item.tx_hash is not None:
                self.deliver_results[item.tx_hash] = error
            self.tx_log.append(TxLogEntry(self.height, "deliver_place_order", key, error.code))

    def _store_order(self, order: Order, market: Market, status: str) -> OrderRecord:
        copy = Order()
        copy.CopyFrom(order)
        record = OrderRecord(
            order=copy,
            ticker=market.ticker,
            status=status,
            created_at_height=self.height,
            updated_at=self.block_time,
            updated_at_height=self.height,
        )
        # Same order id → same Indexer row (replacements and reuse after removal).
        self.orders.pop(record.id, None)
        self.orders[record.id] = record
        self._touch_order(record)
        return record

    def _subaccount_or_empty(self, address: str, number: int) -> Subaccount:
        return self.subaccounts.get((address, number)) or Subaccount(address, number, 0, 0)

    # ---------------------------------------------------------------- matching

    def _execute_taker(self, record: OrderRecord) -> None:
        """Match a new (or just triggered) order against the oracle-priced counterparty."""
        market = self.markets[record.ticker]
        limit = market.price_from_subticks(record.order.subticks)
        fill_price = market.round_to_tick(market.oracle_price, up=record.is_buy)
        crosses = fill_price <= limit if record.is_buy else fill_price >= limit
        if not crosses:
            if record.requires_immediate_execution:
                self._remove(record, STATUS_CANCELED, REMOVAL_IOC_WOULD_REST)
            else:
                self._rest(record, market)
            return
        if record.order.time_in_force == TIF_POST_ONLY:
            self._remove(record, STATUS_CANCELED, REMOVAL_POST_ONLY_WOULD_CROSS)
            return
        quantums = record.remaining_quantums
        if record.order.reduce_only:
            position = self.position_size(record.address, record.subaccount_number, record.ticker)
            direction = 1 if record.is_buy else -1
            if direction * _sign(position) != -1:
                # Only reachable for triggered conditional orders: validated when they execute.
                self._remove(record, STATUS_CANCELED, REMOVAL_INVALID_REDUCE_ONLY)
                return
            quantums = min(quantums, market.quantums_from_size(abs(position)))
        if not self._fill(record, market, quantums, fill_price, "TAKER"):
            self._remove(record, STATUS_CANCELED, REMOVAL_UNDERCOLLATERALIZED)
            return
        if record.is_short_term:
            self._matched_this_block[record.key] = record.order
        if record.remaining_quantums == 0:
            self._mark_filled(record)
        elif record.requires_immediate_execution:
            reason = (
                REMOVAL_REDUCE_ONLY_RESIZE if record.order.reduce_only else REMOVAL_IOC_WOULD_REST
            )
            self._remove(record, STATUS_CANCELED, reason)
        else:
            self._rest(record, market)

    def _rest(self, record: OrderRecord, market: Market) -> None:
        """Put an order on the book if the subaccount could afford it at its limit price."""
        sub = self._subaccount_or_empty(record.address, record.subaccount_number)
        size = market.size_from_quantums(record.remaining_quantums)
        price = market.price_from_subticks(record.order.subticks)
        if not self._collateralized_after(
            sub, market, size if record.is_buy else -size, price, MAKER_FEE_RATE
        ):
            self._remove(record, STATUS_CANCELED, REMOVAL_UNDERCOLLATERALIZED)
            return
        record.status = STATUS_OPEN
        self._touch_order(record)

    def _match_resting_orders(self) -> None:
        for record in list(self.orders.values()):
            if record.status != STATUS_OPEN or (
                record.is_conditional and record.triggered_at_height is None
            ):
                continue
            market = self.markets[record.ticker]
            limit = market.price_from_subticks(record.order.subticks)
            oracle = market.oracle_price
            if (record.is_buy and oracle <= limit) or (not record.is_buy and oracle >= limit):
                if not self._fill(record, market, record.remaining_quantums, limit, "MAKER"):
                    self._remove(record, STATUS_CANCELED, REMOVAL_UNDERCOLLATERALIZED)
                    continue
                self._mark_filled(record)

    def _expire_orders(self) -> None:
        # RemoveExpiredStatefulOrders iterates expirations strictly before the block time.
        now = self.block_time.timestamp()
        for record in list(self.orders.values()):
            if not record.is_live:
                continue
            if record.is_short_term:
                if record.order.good_til_block <= self.height:
                    self._remove(record, STATUS_CANCELED, REMOVAL_EXPIRED)
            elif record.order.good_til_block_time < now:
                self._remove(record, STATUS_CANCELED, REMOVAL_EXPIRED)
        self._short_term_cancels = {
            k: gtb for k, gtb in self._short_term_cancels.items() if gtb > self.height
        }
        self._short_term_fills = {
            k: v for k, v in self._short_term_fills.items() if v[1] > self.height
        }

    def _trigger_conditional_orders(self) -> None:
        for record in list(self.orders.values()):
            if record.status != STATUS_UNTRIGGERED:
                continue
            market = self.markets[record.ticker]
            trigger = market.price_from_subticks(record.order.conditional_order_trigger_subticks)
            oracle = market.oracle_price
            stop_loss = record.order.condition_type == CONDITION_STOP_LOSS
            # order.proto: a sell stop-loss triggers at oracle <= trigger, a sell take-profit
            # at oracle >= trigger; buys are the mirror image.
            hit = oracle >= trigger if record.is_buy == stop_loss else oracle <= trigger
            if hit:
                record.status = STATUS_OPEN
                record.triggered_at_height = self.height
                self._touch_order(record)
                self._triggered_pending.append(record.id)

    def _mark_filled(self, record: OrderRecord) -> None:
        record.status = STATUS_FILLED
        if not record.is_short_term:  # a fully filled stateful order leaves the state
            self._removed_stateful_this_block.add(record.key)
        self._touch_order(record)

    def _remove(self, record: OrderRecord, status: str, reason: str) -> None:
        record.status = status
        record.removal_reason = reason
        if not record.is_short_term:
            self._removed_stateful_this_block.add(record.key)
        self._touch_order(record)

    def _collateralized_after(
        self, sub: Subaccount, market: Market, delta: Decimal, price: Decimal, fee_rate: Decimal
    ) -> bool:
        """Would the subaccount still meet initial margin after trading ``delta`` at ``price``?

        Like the chain, an update that only shrinks an existing position is always allowed.
        """
        current = sub.positions.get(market.ticker)
        old = current.size if current else Decimal(0)
        new = old + delta
        if old != 0 and abs(new) < abs(old) and _sign(new) in (0, _sign(old)):
            return True
        fee = _round_usdc_up(abs(delta) * price * fee_rate)
        usdc = sub.usdc - delta * price - fee
        equity = usdc
        margin = Decimal(0)
        sizes = {t: p.size for t, p in sub.positions.items()}
        sizes[market.ticker] = new
        for ticker, size in sizes.items():
            m = self.markets[ticker]
            equity += size * m.oracle_price
            margin += abs(size) * m.oracle_price * m.initial_margin_fraction
        return equity >= margin and (equity > 0 or margin == 0)

    def _fill(
        self, record: OrderRecord, market: Market, quantums: int, price: Decimal, liquidity: str
    ) -> bool:
        """Fill ``quantums`` of ``record`` at ``price``; False if undercollateralized."""
        if quantums <= 0:
            return True
        sub = self._subaccount(record.address, record.subaccount_number)
        size = market.size_from_quantums(quantums)
        delta = size if record.is_buy else -size
        fee_rate = TAKER_FEE_RATE if liquidity == "TAKER" else MAKER_FEE_RATE
        if not self._collateralized_after(sub, market, delta, price, fee_rate):
            return False
        fee = _round_usdc_up(size * price * fee_rate)
        sub.usdc -= delta * price + fee
        sub.updated_at_height = self.height
        self._apply_position_delta(sub, market, delta, price)
        record.filled_quantums += quantums
        if record.is_short_term:
            self._short_term_fills[record.key] = (
                record.filled_quantums,
                record.order.good_til_block,
            )
        fill = FillRecord(
            id=str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"fill-{self._next_serial()}")),
            address=record.address,
            subaccount_number=record.subaccount_number,
            ticker=market.ticker,
            clob_pair_id=market.clob_pair_id,
            side="BUY" if record.is_buy else "SELL",
            liquidity=liquidity,
            price=price,
            size=size,
            fee=fee,
            created_at=self.block_time,
            created_at_height=self.height,
            order_id=record.id,
            client_metadata=record.order.client_metadata,
        )
        self.fills.append(fill)
        update = self._update(sub.key)
        update.fills.append(fill)
        update.asset_changed = True
        self._touch_order(record)
        return True

    def _apply_position_delta(
        self, sub: Subaccount, market: Market, delta: Decimal, price: Decimal
    ) -> None:
        """Update the position like the Indexer's ender (VWAP entry/exit, close, flip)."""
        position = sub.positions.get(market.ticker)
        if position is None:
            self._open_position(sub, market, delta, price)
            return
        if _sign(delta) == _sign(position.size):
            amount = abs(delta)
            position.entry_price = (position.entry_price * position.sum_open + price * amount) / (
                position.sum_open + amount
            )
            position.sum_open += amount
            position.size += delta
            if abs(position.size) > abs(position.max_size):
                position.max_size = position.size
            self._update(sub.key).positions[position.id] = position
            return
        closing = min(abs(delta), abs(position.size))
        previous_exit = position.exit_price if position.exit_price is not None else Decimal(0)
        position.exit_price = (previous_exit * position.sum_close + price * closing) / (
            position.sum_close + closing
        )
        position.sum_close += closing
        position.size += _sign(delta) * closing
        self._update(sub.key).positions[position.id] = position
        if position.size == 0:
            position.status = POSITION_CLOSED
            position.closed_at = self.block_time
            position.closed_at_height = self.height
            del sub.positions[market.ticker]
        rest = abs(delta) - closing
        if rest > 0:
            self._open_position(sub, market, _sign(delta) * rest, price)

    def _open_position(
        self, sub: Subaccount, market: Market, delta: Decimal, price: Decimal
    ) -> None:
        position = PerpetualPosition(
            id=str(
                uuid.uuid5(
                    INDEXER_UUID_NAMESPACE, f"{sub.uuid}-{market.ticker}-{self._next_serial()}"
                )
            ),
            address=sub.address,
            subaccount_number=sub.number,
            ticker=market.ticker,
            side="LONG" if delta > 0 else "SHORT",
            size=delta,
            max_size=delta,
            entry_price=price,
            sum_open=abs(delta),
            created_at=self.block_time,
            created_at_height=self.height,
        )
        sub.positions[market.ticker] = position
        self.positions.append(position)
        self._update(sub.key).positions[position.id] = position

    # ---------------------------------------------------------------- cancels

    def cancel_order(
        self, order_id: OrderId, good_til_block: int = 0, good_til_block_time: int = 0
    ) -> TxResult:
        """Process ``MsgCancelOrder``.

        Short-term cancels need a good_til_block in the short block window; they are
        remembered until that block, so re-placing the id with an equal or lower
        good_til_block answers ErrOrderIsCanceled (7). Stateful cancels need a
        good_til_block_time and a live order (else ErrStatefulOrderDoesNotExist, 3006).
        """
        with self._batch():
            result = self._cancel_order(order_id, good_til_block, good_til_block_time)
        self.tx_log.append(
            TxLogEntry(self.height, "cancel_order", order_key(order_id), result.code)
        )
        return result

    def _cancel_order(
        self, order_id: OrderId, good_til_block: int, good_til_block_time: int
    ) -> TxResult:
        sub_id = order_id.subaccount_id
        if not is_valid_address(sub_id.owner):
            return ERR_INVALID_SUBACCOUNT_ID_OWNER.result(sub_id.owner)
        if sub_id.number > MAX_SUBACCOUNT_NUMBER:
            return ERR_INVALID_SUBACCOUNT_ID_NUMBER.result(str(sub_id.number))
        flags = order_id.order_flags
        if flags not in (ORDER_FLAG_SHORT_TERM, ORDER_FLAG_CONDITIONAL, ORDER_FLAG_LONG_TERM):
            return ERR_INVALID_ORDER_FLAG.result(f"Order flags {flags}")
        if self.market_by_clob_pair(order_id.clob_pair_id) is None:
            return ERR_INVALID_CLOB.result(f"Clob {order_id.clob_pair_id} is not a valid clob")
        key = order_key(order_id)
        if flags == ORDER_FLAG_SHORT_TERM:
            if good_til_block == 0:
                return ERR_INVALID_ORDER_GOOD_TIL_BLOCK.result(
                    "cancellation goodTilBlock cannot be 0"
                )
            limited = self._rate_limit(sub_id.owner, stateful=False)
            if limited is not None:
                return limited
            return self._cancel_short_term(key, good_til_block)
        if good_til_block_time == 0:
            return ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME.result(
                "stateful order cancellation must have a goodTilBlockTime"
            )
        error = self._validate_good_til_block_time(good_til_block_time)
        if error is not None:
            return error
        owner, number, client_id, _, clob_pair_id = key
        record = self.orders.get(order_uuid(owner, number, client_id, clob_pair_id, flags))
        if record is None or not record.is_live:
            return ERR_STATEFUL_ORDER_DOES_NOT_EXIST.result(
                f"Stateful order id {key} does not exist in state"
            )
        self._remove(record, STATUS_CANCELED, REMOVAL_USER_CANCELED)
        # Until the next block the cancel is uncommitted: re-placing the id answers 3008.
        self._uncommitted_stateful_cancels.add(key)
        return OK

    def _cancel_short_term(self, key: OrderKey, good_til_block: int) -> TxResult:
        error = self._validate_good_til_block(good_til_block)
        if error is not None:
            return error
        existing_cancel = self._short_term_cancels.get(key)
        if existing_cancel is not None and existing_cancel >= good_til_block:
            return ERR_MEMCLOB_CANCEL_ALREADY_EXISTS.result(
                f"Existing cancel GoodTilBlock {existing_cancel}, new {good_til_block}"
            )
        self._short_term_cancels[key] = good_til_block
        record = self._live_short_term(key)
        if record is not None and record.order.good_til_block <= good_til_block:
            self._remove(record, STATUS_CANCELED, REMOVAL_USER_CANCELED)
        return OK

    def batch_cancel(
        self,
        subaccount_id: SubaccountId,
        short_term_cancels: Iterable[OrderBatch],
        good_til_block: int,
    ) -> TxResult:
        """Process ``MsgBatchCancel`` (short-term orders only).

        Succeeds if at least one cancel succeeded; ErrBatchCancelFailed (46) if all failed.
        """
        batches = list(short_term_cancels)
        with self._batch():
            result = self._batch_cancel(subaccount_id, batches, good_til_block)
        key = (subaccount_id.owner, subaccount_id.number)
        self.tx_log.append(TxLogEntry(self.height, "batch_cancel", key, result.code))
        return result

    def _batch_cancel(
        self, subaccount_id: SubaccountId, batches: list[OrderBatch], good_til_block: int
    ) -> TxResult:
        if not is_valid_address(subaccount_id.owner):
            return ERR_INVALID_SUBACCOUNT_ID_OWNER.result(subaccount_id.owner)
        total = sum(len(b.client_ids) for b in batches)
        if total == 0 or total > 100:
            return ERR_INVALID_BATCH_CANCEL.result(
                f"Batch cancel cannot have zero orders or more than 100 orders, got {total}"
            )
        seen_pairs: set[int] = set()
        for batch in batches:
            if batch.clob_pair_id in seen_pairs or len(set(batch.client_ids)) != len(
                batch.client_ids
            ):
                return ERR_INVALID_BATCH_CANCEL.result("Batch cancel has duplicate entries")
            seen_pairs.add(batch.clob_pair_id)
        if good_til_block == 0:
            return ERR_INVALID_ORDER_GOOD_TIL_BLOCK.result("batch cancel goodTilBlock cannot be 0")
        error = self._validate_good_til_block(good_til_block)
        if error is not None:
            return error
        limited = self._rate_limit(
            subaccount_id.owner, stateful=False, weight=BATCH_CANCEL_RATE_LIMIT_WEIGHT
        )
        if limited is not None:
            return limited
        succeeded = 0
        for batch in batches:
            if self.market_by_clob_pair(batch.clob_pair_id) is None:
                continue
            for client_id in batch.client_ids:
                key = (
                    subaccount_id.owner,
                    subaccount_id.number,
                    client_id,
                    ORDER_FLAG_SHORT_TERM,
                    batch.clob_pair_id,
                )
                if self._cancel_short_term(key, good_til_block).ok:
                    succeeded += 1
        if succeeded == 0:
            return ERR_BATCH_CANCEL_FAILED.result("all cancels failed")
        return OK

    # ---------------------------------------------------------------- queries for the Indexer

    def orders_of(self, address: str, number: int) -> list[OrderRecord]:
        """All orders of a subaccount (latest state per order id)."""
        return [
            r
            for r in self.orders.values()
            if r.address == address and r.subaccount_number == number
        ]

    def fills_of(self, address: str, number: int) -> list[FillRecord]:
        """All fills of a subaccount, oldest first."""
        return [f for f in self.fills if f.address == address and f.subaccount_number == number]

    def positions_of(self, address: str, number: int) -> list[PerpetualPosition]:
        """All positions (open and closed) of a subaccount, oldest first."""
        return [p for p in self.positions if p.address == address and p.subaccount_number == number]

    def open_interest(self, ticker: str) -> Decimal:
        """Sum of long open sizes in ``ticker``."""
        return sum(
            (
                p.size
                for sub in self.subaccounts.values()
                for p in sub.positions.values()
                if p.ticker == ticker and p.size > 0
            ),
            Decimal(0),
        )
