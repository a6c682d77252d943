"""The exchange port: what the order-execution layer needs from a perpetuals exchange.

The dYdX v4 adapter implements :class:`Exchange`; tests implement it with doubles. Every
amount is a :class:`~decimal.Decimal` in human units (base asset for sizes, USD for prices and
collateral); the adapter converts to the chain's integers (see
:mod:`core.exchange.dydx.quantize`).

Errors (:mod:`core.exchange.errors`): reads raise :class:`ExchangeUnavailableError`;
``place_order``/``cancel_order`` raise :class:`RetryableExchangeError`,
:class:`PermanentExchangeError` or :class:`UnknownOutcomeError` (timeout after broadcast).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Protocol

from core.domain.states import OrderSide, PositionSide

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
class MarketInfo:
    """A perpetual market as the exchange lists it.

    Attributes:
        ticker: e.g. ``"ETH-USD"``.
        clob_pair_id: The chain's CLOB pair id.
        status: ``ACTIVE``, ``PAUSED``, ``CANCEL_ONLY``, ``POST_ONLY``, ``INITIALIZING`` or
            ``FINAL_SETTLEMENT``.
        oracle_price: Current oracle price in USD.
        tick_size: Price increment in USD.
        step_size: Size increment in base units.
        min_order_size: Smallest order size (one step on dYdX).
        initial_margin_fraction: Initial margin fraction (1 / max leverage).
        maintenance_margin_fraction: Maintenance margin fraction.
        atomic_resolution: Base quantums are ``size * 10**-atomic_resolution``.
        quantum_conversion_exponent: Relates subticks to quote quantums.
        step_base_quantums: Order quantums are multiples of this.
        subticks_per_tick: Order subticks are multiples of this.
    """

    ticker: str
    clob_pair_id: int
    status: str
    oracle_price: Decimal
    tick_size: Decimal
    step_size: Decimal
    min_order_size: Decimal
    initial_margin_fraction: Decimal
    maintenance_margin_fraction: Decimal
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int

    @property
    def is_active(self) -> bool:
        """Whether the market accepts every kind of order."""
        return self.status == "ACTIVE"


@dataclass(frozen=True, slots=True)
class Account:
    """Collateral of the trading subaccount, in USD.

    Attributes:
        equity: Total account value (collateral plus unrealized PnL).
        free_collateral: What new orders may use as initial margin.
    """

    equity: Decimal
    free_collateral: Decimal


@dataclass(frozen=True, slots=True)
class Position:
    """An open perpetual position.

    Attributes:
        market: Ticker.
        side: LONG or SHORT.
        size: Absolute size in base units (always positive).
        entry_price: Average entry price in USD.
        unrealized_pnl: Unrealized PnL in USD.
        realized_pnl: Realized PnL in USD (including funding).
    """

    market: str
    side: PositionSide
    size: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A live order (open, best-effort opened or untriggered).

    Attributes:
        order_id: The Indexer's order id.
        client_id: Our uint32 client id.
        flags: Order lifetime.
        market: Ticker.
        side: BUY or SELL.
        kind: Order kind.
        size: Total size in base units.
        filled_size: Size filled so far.
        price: Limit (or worst acceptable) price in USD.
        trigger_price: Trigger price of a conditional order, else None.
        reduce_only: Whether the order can only reduce a position.
        time_in_force: Time in force.
        status: The Indexer's status (``OPEN``, ``BEST_EFFORT_OPENED``, ``UNTRIGGERED``).
        good_til_block: Expiry block of a short-term order, else None.
        good_til_block_time: Expiry time of a stateful order, else None.
    """

    order_id: str
    client_id: int
    flags: OrderFlags
    market: str
    side: OrderSide
    kind: OrderKind
    size: Decimal
    filled_size: Decimal
    price: Decimal
    trigger_price: Decimal | None
    reduce_only: bool
    time_in_force: TimeInForce
    status: str
    good_til_block: int | None = None
    good_til_block_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of one of our orders.

    Attributes:
        fill_id: The Indexer's fill id.
        order_id: The Indexer's order id (None for liquidations and deleveraging).
        market: Ticker.
        side: BUY or SELL.
        size: Filled size in base units.
        price: Fill price in USD.
        fee: Fee paid in USD (negative for a rebate).
        liquidity: ``MAKER`` or ``TAKER``.
        created_at: When the fill happened (UTC).
        created_at_height: Block of the fill.
    """

    fill_id: str
    order_id: str | None
    market: str
    side: OrderSide
    size: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str
    created_at: datetime
    created_at_height: int


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
    """The node's answer to a broadcast order (CheckTx).

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        code: ABCI code, 0 when accepted.
        codespace: ABCI codespace, empty when accepted.
        raw_log: The chain's raw log.
        tx_bytes: The exact signed bytes broadcast (re-broadcasting them is idempotent).
    """

    tx_hash: str
    code: int
    codespace: str
    raw_log: str
    tx_bytes: bytes

    @property
    def accepted(self) -> bool:
        """Whether CheckTx accepted the transaction."""
        return self.code == 0

    @property
    def already_broadcast(self) -> bool:
        """Whether the same bytes were already in the mempool (``sdk`` 19): not a refusal."""
        return (self.codespace, self.code) == ("sdk", 19)


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The node's answer to a broadcast cancel (CheckTx).

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        code: ABCI code, 0 when accepted.
        codespace: ABCI codespace, empty when accepted.
        raw_log: The chain's raw log.
        tx_bytes: The exact signed bytes broadcast.
    """

    tx_hash: str
    code: int
    codespace: str
    raw_log: str
    tx_bytes: bytes

    @property
    def accepted(self) -> bool:
        """Whether CheckTx accepted the transaction."""
        return self.code == 0

    @property
    def already_broadcast(self) -> bool:
        """Whether the same bytes were already in the mempool (``sdk`` 19): not a refusal.

        A short-term cancel signed again with the same expiry has the same bytes (signatures
        are deterministic), so repeating a cancel can answer this.
        """
        return (self.codespace, self.code) == ("sdk", 19)


class Exchange(Protocol):
    """A perpetuals exchange, bound to one trading subaccount.

    Placing is split in two so a caller can commit the signed bytes before they leave the
    process (exactly-once): :meth:`sign_order` then :meth:`broadcast`; :meth:`place_order` is
    both in one call.
    """

    @property
    def is_paper(self) -> bool:
        """Whether orders are simulated (nothing is ever sent to a node)."""
        ...

    @property
    def owner_address(self) -> str:
        """The subaccount owner (``dydx1…``; ``paper:<user id>`` for paper trading)."""
        ...

    @property
    def subaccount_number(self) -> int:
        """The trading subaccount number."""
        ...

    async def block_height(self) -> int:
        """The latest block height (the base of a short-term order's ``good_til_block``).

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def market(self, ticker: str) -> MarketInfo:
        """One market with a fresh oracle price.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def account(self) -> Account:
        """Equity and free collateral of the subaccount.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def positions(self) -> list[Position]:
        """Open positions of the subaccount.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def open_orders(self, market: str | None = None) -> list[OpenOrder]:
        """Live orders of the subaccount, optionally of one market.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def fills(self, market: str | None = None, limit: int = 100) -> list[Fill]:
        """Latest fills of the subaccount, newest first.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def find_order(self, market: str, client_id: int, flags: OrderFlags) -> OpenOrder | None:
        """Our order with this client id, in any status (``OPEN``, ``FILLED``, ``CANCELED``,
        ``BEST_EFFORT_CANCELED``, ``BEST_EFFORT_OPENED``, ``UNTRIGGERED``), or None when the
        exchange has never seen it.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def sign_order(self, request: OrderRequest) -> SignedTx:
        """Build and sign an order without sending it.

        Raises:
            QuantizationError: Size or price is not on the market's grid.
            KeyError: The market is not listed.
            ExchangeUnavailableError: Data needed to sign (account number, nonce) is missing.
        """
        ...

    async def sign_cancel(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> SignedTx:
        """Build and sign the cancel of one of our orders without sending it.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: Data needed to sign is missing.
        """
        ...

    async def broadcast(self, signed: SignedTx) -> PlaceResult:
        """Send signed bytes; the answer of CheckTx.

        Returns:
            The accepted (or ``already_broadcast``) result.

        Raises:
            RetryableExchangeError: Refused for a transient reason (or the node was not
                reached at all); sign again and send.
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            UnknownOutcomeError: Sent, but no answer: reconcile before doing anything.
        """
        ...

    async def place_order(self, request: OrderRequest) -> PlaceResult:
        """Sign and broadcast an order.

        Returns:
            The accepted (or ``already_broadcast``) result.

        Raises:
            RetryableExchangeError: Refused for a transient reason; build and send again.
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            UnknownOutcomeError: Broadcast, but no answer: reconcile before doing anything.
            QuantizationError: Size or price is not on the market's grid (nothing sent).
        """
        ...

    async def cancel_order(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> CancelResult:
        """Sign and broadcast the cancel of one of our orders.

        Args:
            market: Ticker of the order.
            client_id: Client id of the order.
            flags: Lifetime of the order.
            good_til_block: Expiry block of the cancel (short-term orders).
            good_til_block_time: Expiry time of the cancel (stateful orders).

        Raises:
            RetryableExchangeError: Refused for a transient reason.
            PermanentExchangeError: Refused (e.g. the order no longer exists).
            UnknownOutcomeError: Broadcast, but no answer.
        """
        ...
