"""Records of the dYdX v4 double's state: accounts, subaccounts, positions, orders, fills."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import Order

from doubles.dydx.state.constants import (
    LIVE_STATUSES,
    ORDER_FLAG_CONDITIONAL,
    ORDER_FLAG_SHORT_TERM,
    POSITION_OPEN,
    SIDE_BUY,
    TIF_FOK,
    TIF_IOC,
    TIMESTAMP_NONCE_WINDOW,
)
from doubles.dydx.state.errors import TxResult
from doubles.dydx.state.ids import OrderKey, SubaccountKey, order_key, order_uuid, subaccount_uuid


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
