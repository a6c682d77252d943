"""What an order is, venue-neutrally: its kind, lifetime and request, and the venue's answer.

Every amount is a :class:`~decimal.Decimal` in human units (base asset for sizes, USD for
prices); each venue converts to its own encoding at its boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum

from core.domain.states import OrderSide
from core.exchange.errors import PermanentExchangeError, StaleSignatureError

MAX_CLIENT_ID = 2**32 - 1


class OrderKind(StrEnum):
    """What the order does once it is on the book."""

    MARKET = "MARKET"  # short-term IOC at a worst acceptable price
    LIMIT = "LIMIT"
    STOP = "STOP"  # conditional: triggers when the oracle crosses the trigger against us
    TAKE_PROFIT = "TAKE_PROFIT"  # conditional: triggers when the oracle crosses it in our favour


class TimeInForce(StrEnum):
    """Time in force (the chain's ``TIME_IN_FORCE_UNSPECIFIED`` is good-til-time)."""

    GTT = "GTT"
    IOC = "IOC"
    POST_ONLY = "POST_ONLY"


class OrderFlags(IntEnum):
    """The chain's order lifetimes (``OrderId.order_flags``)."""

    SHORT_TERM = 0
    CONDITIONAL = 32
    LONG_TERM = 64


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to place, in human units.

    A MARKET order is a short-term IOC order whose ``price`` is the worst acceptable price; a
    LIMIT order rests (long-term, ``good_til_block_time``) or is short-term
    (``good_til_block``); STOP and TAKE_PROFIT orders are conditional and need a
    ``trigger_price`` and a ``good_til_block_time``.

    Attributes:
        market: Ticker.
        side: BUY or SELL.
        size: Size in base units, on the market's step grid.
        kind: Order kind.
        price: Limit price, or the worst acceptable price of a MARKET order / triggered
            market-like conditional order, in USD, on the tick grid.
        trigger_price: Trigger price of STOP / TAKE_PROFIT orders.
        reduce_only: Only reduce a position (the chain requires IOC for this).
        time_in_force: Time in force.
        client_id: Our uint32 client id.
        good_til_block: Expiry block (short-term orders).
        good_til_block_time: Expiry time (stateful orders, tz-aware).

    Raises:
        ValueError: The fields contradict each other (checked at construction).
    """

    market: str
    side: OrderSide
    size: Decimal
    kind: OrderKind
    price: Decimal
    client_id: int
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTT
    good_til_block: int | None = None
    good_til_block_time: datetime | None = None

    def __post_init__(self) -> None:
        if not self.size.is_finite() or self.size <= 0:
            raise ValueError("order size must be positive")
        if not self.price.is_finite() or self.price <= 0:
            raise ValueError("order price must be positive")
        if not 0 <= self.client_id <= MAX_CLIENT_ID:
            raise ValueError("client_id must be a uint32")
        conditional = self.kind in (OrderKind.STOP, OrderKind.TAKE_PROFIT)
        if conditional != (self.trigger_price is not None):
            raise ValueError("a trigger price is required by, and only by, STOP/TAKE_PROFIT")
        if self.trigger_price is not None and self.trigger_price <= 0:
            raise ValueError("trigger price must be positive")
        if (self.good_til_block is None) == (self.good_til_block_time is None):
            raise ValueError("exactly one of good_til_block and good_til_block_time is required")
        if self.kind is OrderKind.MARKET and (
            self.time_in_force is not TimeInForce.IOC or self.good_til_block is None
        ):
            raise ValueError("a MARKET order is short-term IOC (good_til_block)")
        if conditional and self.good_til_block_time is None:
            raise ValueError("STOP/TAKE_PROFIT orders are stateful (good_til_block_time)")
        if self.reduce_only and self.time_in_force is not TimeInForce.IOC:
            raise ValueError("reduce-only orders must be IOC")
        if self.good_til_block_time is not None and self.good_til_block_time.tzinfo is None:
            raise ValueError("good_til_block_time must be timezone-aware")

    @property
    def flags(self) -> OrderFlags:
        """The order lifetime this request maps to."""
        if self.kind in (OrderKind.STOP, OrderKind.TAKE_PROFIT):
            return OrderFlags.CONDITIONAL
        if self.good_til_block is not None:
            return OrderFlags.SHORT_TERM
        return OrderFlags.LONG_TERM


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction, ready to broadcast (and to re-broadcast byte for byte).

    Attributes:
        tx_bytes: The exact bytes to broadcast (``TxRaw`` on dYdX).
        tx_hash: Upper-case hex SHA-256 of ``tx_bytes``.
    """

    tx_bytes: bytes
    tx_hash: str


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """The venue's answer to a sent order.

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        code: The venue's diagnostic code, 0 when accepted; opaque otherwise.
        codespace: The venue's diagnostic namespace of ``code``, empty when accepted.
        raw_log: The venue's raw answer.
        tx_bytes: The exact signed bytes sent (sending them again is idempotent).
        already_placed: The same signed bytes were already pending: not a refusal.
    """

    tx_hash: str
    code: int
    codespace: str
    raw_log: str
    tx_bytes: bytes
    already_placed: bool = False

    @property
    def accepted(self) -> bool:
        """Whether the venue accepted the transaction."""
        return self.code == 0


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The venue's answer to a sent cancel.

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        code: The venue's diagnostic code, 0 when accepted; opaque otherwise.
        codespace: The venue's diagnostic namespace of ``code``, empty when accepted.
        raw_log: The venue's raw answer.
        tx_bytes: The exact signed bytes sent.
        already_placed: The same signed bytes were already pending: not a refusal (a
            short-term cancel signed again with the same expiry has the same bytes, so
            repeating a cancel can answer this).
    """

    tx_hash: str
    code: int
    codespace: str
    raw_log: str
    tx_bytes: bytes
    already_placed: bool = False

    @property
    def accepted(self) -> bool:
        """Whether the venue accepted the transaction."""
        return self.code == 0


@dataclass(frozen=True, slots=True)
class TxResult:
    """What became of a transaction a block included (the venue's ``GetTx``).

    A stateful order can pass the broadcast's check and still fail when its block executes
    (e.g. collateral changed in between): only this result tells, the venue's order book
    never shows such an order.

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        height: Block that included it.
        error: Why executing it failed, or None when it succeeded: a
            :class:`StaleSignatureError` when the block refused the signature's replay
            protection (nothing of the transaction took effect: sign again), else a
            :class:`PermanentExchangeError` with the venue's reason.
    """

    tx_hash: str
    height: int
    error: PermanentExchangeError | StaleSignatureError | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the block executed the transaction."""
        return self.error is None
