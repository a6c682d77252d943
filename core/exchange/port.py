"""The exchange port: what the order-execution layer needs from a perpetuals venue.

Venues (the dYdX v4 adapter, the paper venue) implement :class:`Exchange`; tests implement it
with doubles. Every amount is a :class:`~decimal.Decimal` in human units (base asset for sizes,
USD for prices and collateral); each venue converts to its own encoding inside its adapter.
Orders and the venue's answers are in :mod:`core.exchange.orders`, the size and price grid in
:mod:`core.exchange.grid`.

Errors (:mod:`core.exchange.errors`): reads raise :class:`ExchangeUnavailableError`;
``place_order``/``cancel_order`` raise :class:`RetryableExchangeError`,
:class:`PermanentExchangeError` or :class:`UnknownOutcomeError` (timeout after sending).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.domain.states import OrderSide, PositionSide
from core.exchange.orders import (
    CancelResult,
    OrderFlags,
    OrderKind,
    OrderRequest,
    PlaceResult,
    SignedTx,
    TimeInForce,
    TxResult,
)


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """A perpetual market as the venue lists it.

    Attributes:
        ticker: e.g. ``"ETH-USD"``.
        status: ``ACTIVE``, ``PAUSED``, ``CANCEL_ONLY``, ``POST_ONLY``, ``INITIALIZING`` or
            ``FINAL_SETTLEMENT``.
        oracle_price: Current oracle price in USD.
        tick_size: Price increment in USD.
        step_size: Size increment in base units.
        min_order_size: Smallest order size (one step on dYdX).
        initial_margin_fraction: Initial margin fraction (1 / max leverage).
        maintenance_margin_fraction: Maintenance margin fraction.
    """

    ticker: str
    status: str
    oracle_price: Decimal
    tick_size: Decimal
    step_size: Decimal
    min_order_size: Decimal
    initial_margin_fraction: Decimal
    maintenance_margin_fraction: Decimal

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
class VenueCapabilities:
    """What a venue can do, as data rather than branches (freqtrade's ``_ft_has``).

    Attributes:
        short_term_window: Blocks ahead of the current height within which a short-term
            order's expiry block must lie (the chain accepts
            ``height < good_til_block <= height + window``).
        short_term_safety_margin: Blocks kept free at the end of the window: our height may
            be ahead of the node that checks the order.

    Raises:
        ValueError: The margin leaves no block in the window.
    """

    short_term_window: int
    short_term_safety_margin: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.short_term_safety_margin < self.short_term_window:
            raise ValueError("the margin must leave at least one block in the window")

    def short_term_good_til_block(self, height: int) -> int:
        """The expiry block of a short-term order sent now.

        Going ``window - margin`` blocks ahead tolerates a height we read that is up to
        ``window - margin - 1`` blocks stale, and a checking node up to ``margin`` blocks
        behind.

        Args:
            height: Last committed block height we know.

        Raises:
            ValueError: Negative height.
        """
        if height < 0:
            raise ValueError("the block height cannot be negative")
        return height + self.short_term_window - self.short_term_safety_margin


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
    def capabilities(self) -> VenueCapabilities:
        """What the venue can do (short-term order window...)."""
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

    async def indexer_height(self) -> int:
        """The latest block the venue's order reads (:meth:`find_order`, :meth:`fills`) have
        processed; behind :meth:`block_height` while the venue's Indexer lags.

        An order the reads have not shown is only known not to exist once this height passed
        the block the order had to land by.

        Raises:
            ExchangeUnavailableError: The exchange could not answer.
        """
        ...

    async def tx_result(self, tx_hash: str) -> TxResult | None:
        """The result of a transaction a block included, or None when no block has it (yet).

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
            GridError: Size or price is not on the market's grid.
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
            The accepted (or ``already_placed``) result.

        Raises:
            StaleSignatureError: The bytes' replay protection is out of date or used: they
                can never land; check :meth:`tx_result`, then sign again.
            RetryableExchangeError: Refused for a transient reason (or the node was not
                reached at all); sign again and send.
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            UnknownOutcomeError: Sent, but no answer: reconcile before doing anything.
        """
        ...

    async def place_order(self, request: OrderRequest) -> PlaceResult:
        """Sign and broadcast an order.

        Returns:
            The accepted (or ``already_placed``) result.

        Raises:
            RetryableExchangeError: Refused for a transient reason; build and send again.
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            UnknownOutcomeError: Broadcast, but no answer: reconcile before doing anything.
            GridError: Size or price is not on the market's grid (nothing sent).
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
