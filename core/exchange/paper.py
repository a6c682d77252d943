"""The paper-trading venue: an :class:`~core.exchange.port.Exchange` that never sends anything
to a node.

Orders fill against one infinitely deep counterparty at the live oracle price (read from the
Indexer through a :class:`MarketSource`) plus slippage against the trader, and pay a taker fee;
each user has a virtual USDC balance. Everything is persisted in the ``paper_*`` tables, so
the venue survives restarts and several processes can share it: every write runs in one
transaction that first locks the user's ``paper_accounts`` row, which serializes concurrent
operations of one user.

Signing produces a canonical JSON encoding of the request (the "transaction"); its SHA-256 is
the transaction hash, so a caller can persist the bytes before broadcasting and re-broadcast
them after a crash: the second broadcast answers ``sdk`` 19 (already broadcast), exactly like
the chain.

Fill rules:

* MARKET (short-term IOC): fills in full at ``oracle ± slippage`` (rounded to a tick against
  the trader) if that is within the worst acceptable price, else it is cancelled unfilled.
* LIMIT: marketable when the oracle is at or through the limit; it then fills at once at the
  better of the limit and ``oracle ± slippage``. Otherwise an IOC order is cancelled and any
  other order rests OPEN until :meth:`PaperExchange.check_triggers` sees the oracle cross it.
* STOP / TAKE_PROFIT rest UNTRIGGERED; once the oracle crosses the trigger they behave as a
  LIMIT order at their price (IOC: fill or cancel; otherwise fill or rest OPEN).
* Reduce-only orders are clipped to the opposite position; with nothing to reduce they are
  refused at broadcast and cancelled when they trigger later.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import PaperAccount, PaperFill, PaperOrder, PaperPosition
from core.db.repositories.paper import LIVE_STATUSES, PaperRepository
from core.domain.states import OrderSide, PositionSide
from core.exchange import grid
from core.exchange.dydx.constants import CAPABILITIES
from core.exchange.dydx.errors import error_from_chain
from core.exchange.errors import ExchangeError
from core.exchange.orders import (
    CancelResult,
    OrderFlags,
    OrderKind,
    OrderRequest,
    PlaceResult,
    SignedTx,
    TimeInForce,
)
from core.exchange.port import (
    Account,
    Fill,
    MarketInfo,
    OpenOrder,
    Position,
    VenueCapabilities,
)
from core.runtime.logs import get_logger

DEFAULT_STARTING_BALANCE = Decimal("10000")
DEFAULT_TAKER_FEE = Decimal("0.0005")
DEFAULT_SLIPPAGE = Decimal("0.0005")

#: Pseudo blocks per second of :meth:`PaperExchange.block_height` (about dYdX's pace).
BLOCKS_PER_SECOND = 2
#: The chain refuses stateful orders that expire further ahead than this.
MAX_STATEFUL_LIFETIME = timedelta(days=95)
#: Marks the encoding, so bytes of another format are never mistaken for a paper order.
_FORMAT = "tv2dydx-paper/1"
#: The ledger's precision (``Numeric(38, 18)``): stored amounts are rounded to it.
_LEDGER_QUANTUM = Decimal("1e-18")
_ALREADY_BROADCAST_LOG = "tx already in mempool cache"

_ORDER_KEYS = frozenset(
    {
        "format",
        "type",
        "owner",
        "subaccount",
        "market",
        "side",
        "size",
        "kind",
        "price",
        "client_id",
        "trigger_price",
        "reduce_only",
        "time_in_force",
        "good_til_block",
        "good_til_block_time",
    }
)
_CANCEL_KEYS = frozenset(
    {
        "format",
        "type",
        "owner",
        "subaccount",
        "market",
        "client_id",
        "flags",
        "good_til_block",
        "good_til_block_time",
    }
)


class MarketSource(Protocol):
    """Where the paper venue reads markets and live oracle prices (the Indexer in production:
    :class:`core.exchange.dydx.indexer.IndexerClient`)."""

    async def market(self, ticker: str) -> MarketInfo:
        """One market with a fresh oracle price.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The source could not answer.
        """
        ...

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The source could not answer.
        """
        ...


# --------------------------------------------------------------------------------------------
# The transaction encoding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CancelTx:
    market: str
    client_id: int
    flags: OrderFlags
    good_til_block: int | None
    good_til_block_time: datetime | None


class _MalformedError(ValueError):
    """The bytes are not a paper transaction of this account."""


def _dec(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signed(payload: Mapping[str, Any]) -> SignedTx:
    tx_bytes = _canonical(payload)
    return SignedTx(tx_bytes=tx_bytes, tx_hash=_tx_hash(tx_bytes))


def _tx_hash(tx_bytes: bytes) -> str:
    return hashlib.sha256(tx_bytes).hexdigest().upper()


def _order_payload(request: OrderRequest, owner: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "type": "order",
        "owner": owner,
        "subaccount": 0,
        "market": request.market,
        "side": request.side.value,
        "size": _dec(request.size),
        "kind": request.kind.value,
        "price": _dec(request.price),
        "client_id": request.client_id,
        "trigger_price": None if request.trigger_price is None else _dec(request.trigger_price),
        "reduce_only": request.reduce_only,
        "time_in_force": request.time_in_force.value,
        "good_til_block": request.good_til_block,
        "good_til_block_time": _time(request.good_til_block_time),
    }


def _cancel_payload(tx: _CancelTx, owner: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "type": "cancel",
        "owner": owner,
        "subaccount": 0,
        "market": tx.market,
        "client_id": tx.client_id,
        "flags": int(tx.flags),
        "good_til_block": tx.good_til_block,
        "good_til_block_time": _time(tx.good_til_block_time),
    }


def _field(payload: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = payload[key]
    # bool is an int subclass: a flag must not pass as a number, nor a number as a flag.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _MalformedError(f"{key} has the wrong type")
    return value


def _optional(payload: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    return None if payload[key] is None else _field(payload, key, kind)


def _decimal(payload: Mapping[str, Any], key: str) -> Decimal:
    return Decimal(_field(payload, key, str))


def _datetime(payload: Mapping[str, Any], key: str) -> datetime | None:
    text = _optional(payload, key, str)
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise _MalformedError(f"{key} is not timezone-aware")
    return value


def _decode(tx_bytes: bytes, owner: str) -> OrderRequest | _CancelTx:
    """Parse and validate paper transaction bytes.

    Raises:
        _MalformedError: Not a canonical paper transaction of ``owner``.
    """
    try:
        payload = json.loads(tx_bytes.decode("utf-8"))
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise _MalformedError("not a paper transaction")
        if payload.get("owner") != owner or payload.get("subaccount") != 0:
            raise _MalformedError("a paper transaction of another account")
        decoded: OrderRequest | _CancelTx
        if payload.get("type") == "order" and payload.keys() == _ORDER_KEYS:
            trigger = _optional(payload, "trigger_price", str)
            decoded = OrderRequest(
                market=_field(payload, "market", str),
                side=OrderSide(_field(payload, "side", str)),
                size=_decimal(payload, "size"),
                kind=OrderKind(_field(payload, "kind", str)),
                price=_decimal(payload, "price"),
                client_id=_field(payload, "client_id", int),
                trigger_price=None if trigger is None else Decimal(trigger),
                reduce_only=_field(payload, "reduce_only", bool),
                time_in_force=TimeInForce(_field(payload, "time_in_force", str)),
                good_til_block=_optional(payload, "good_til_block", int),
                good_til_block_time=_datetime(payload, "good_til_block_time"),
            )
            canonical = _canonical(_order_payload(decoded, owner))
        elif payload.get("type") == "cancel" and payload.keys() == _CANCEL_KEYS:
            decoded = _CancelTx(
                market=_field(payload, "market", str),
                client_id=_field(payload, "client_id", int),
                flags=OrderFlags(_field(payload, "flags", int)),
                good_til_block=_optional(payload, "good_til_block", int),
                good_til_block_time=_datetime(payload, "good_til_block_time"),
            )
            canonical = _canonical(_cancel_payload(decoded, owner))
        else:
            raise _MalformedError("unknown paper transaction type or fields")
    except _MalformedError:
        raise
    except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors too.
        raise _MalformedError(type(exc).__name__) from None
    # One request has exactly one encoding, hence one hash: idempotence rests on it.
    if canonical != tx_bytes:
        raise _MalformedError("not the canonical encoding")
    return decoded


# --------------------------------------------------------------------------------------------
# Ledger arithmetic (pure)
# --------------------------------------------------------------------------------------------


def _ledger(value: Decimal) -> Decimal:
    """Round to the ledger's precision, so memory and database hold the same number."""
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(_LEDGER_QUANTUM)


def _trade(
    size: Decimal, entry: Decimal, side: OrderSide, quantity: Decimal, price: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """A position after a fill.

    Args:
        size: Signed position size before (positive long).
        entry: Entry price before.
        side: Side of the fill.
        quantity: Filled size (positive).
        price: Fill price.

    Returns:
        ``(new signed size, new entry price, realized PnL of the reduced part)``.
    """
    signed = quantity if side is OrderSide.BUY else -quantity
    new_size = size + signed
    with localcontext() as ctx:
        ctx.prec = 60
        if size == 0 or (size > 0) == (signed > 0):
            weighted = (abs(size) * entry + quantity * price) / abs(new_size)
            return new_size, _ledger(weighted), Decimal(0)
        closed = min(abs(size), quantity)
        realized = closed * (price - entry) * (1 if size > 0 else -1)
    if new_size == 0:
        new_entry = Decimal(0)
    elif (new_size > 0) == (size > 0):
        new_entry = entry  # partly reduced: the rest keeps its entry
    else:
        new_entry = price  # flipped: the new side opened at this fill
    return new_size, new_entry, _ledger(realized)


def _chain_error(codespace: str, code: int, raw_log: str) -> ExchangeError:
    """The error the chain would give for this refusal (same code, same plain reason)."""
    error = error_from_chain(codespace, code, raw_log)
    assert error is not None  # only called with non-zero codes
    return error


def _status(order: PaperOrder, height: int, now: datetime) -> str:
    """The order's status, counting a live order past its expiry as cancelled."""
    if order.status in LIVE_STATUSES and (
        (order.good_til_block is not None and order.good_til_block < height)
        or (order.good_til_block_time is not None and order.good_til_block_time <= now)
    ):
        return "CANCELED"
    return order.status


def _pseudo_height(moment: float) -> int:
    return int(moment * BLOCKS_PER_SECOND)


def _open_order(order: PaperOrder, height: int, now: datetime) -> OpenOrder:
    return OpenOrder(
        order_id=f"paper-{order.id}",
        client_id=order.client_id,
        flags=OrderFlags(order.order_flags),
        market=order.market,
        side=order.side,
        kind=OrderKind(order.kind),
        size=order.size,
        filled_size=order.filled_size,
        price=order.price,
        trigger_price=order.trigger_price,
        reduce_only=order.reduce_only,
        time_in_force=TimeInForce(order.time_in_force),
        status=_status(order, height, now),
        good_til_block=order.good_til_block,
        good_til_block_time=order.good_til_block_time,
    )


def _fill(fill: PaperFill) -> Fill:
    return Fill(
        fill_id=f"paper-fill-{fill.id}",
        order_id=f"paper-{fill.paper_order_id}",
        market=fill.market,
        side=fill.side,
        size=fill.size,
        price=fill.price,
        fee=fill.fee,
        liquidity="TAKER",
        created_at=fill.created_at,
        created_at_height=_pseudo_height(fill.created_at.timestamp()),
    )


# --------------------------------------------------------------------------------------------
# One locked transaction's view of the user's book
# --------------------------------------------------------------------------------------------


class _Book:
    """The user's locked account, positions and the markets of one operation."""

    def __init__(
        self,
        repo: PaperRepository,
        account: PaperAccount,
        positions: list[PaperPosition],
        markets: Mapping[str, MarketInfo],
        *,
        taker_fee: Decimal,
        slippage: Decimal,
    ) -> None:
        self.repo = repo
        self.account = account
        self.positions = {position.market: position for position in positions}
        self.markets = markets
        self.taker_fee = taker_fee
        self.slippage = slippage

    def position_size(self, market: str) -> Decimal:
        position = self.positions.get(market)
        return Decimal(0) if position is None else position.size

    def free_collateral(
        self, balance: Decimal, override: tuple[str, Decimal, Decimal] | None = None
    ) -> Decimal:
        """Equity minus initial margin, with one market's position replaced by ``override``."""
        sizes = {m: (p.size, p.entry_price) for m, p in self.positions.items()}
        if override is not None:
            sizes[override[0]] = (override[1], override[2])
        free = balance
        with localcontext() as ctx:
            ctx.prec = 60
            for ticker, (size, entry) in sizes.items():
                if size == 0:
                    continue
                info = self.markets.get(ticker)
                # A delisted market: value it at entry and require full margin (conservative).
                oracle = entry if info is None else info.oracle_price
                fraction = Decimal(1) if info is None else info.initial_margin_fraction
                free += size * (oracle - entry) - abs(size) * oracle * fraction
        return free

    def fill_price(self, order: PaperOrder, info: MarketInfo) -> Decimal | None:
        """The price the order trades at now, or None when it cannot trade.

        A MARKET order trades at oracle ± slippage within its worst price; anything else is a
        limit at ``order.price``: it trades when the oracle reaches the limit, at the better
        of the limit and oracle ± slippage.
        """
        side = order.side
        taker = grid.worst_price(side, info.oracle_price, self.slippage, info)
        buy = side is OrderSide.BUY
        if order.kind == OrderKind.MARKET:
            within = taker <= order.price if buy else taker >= order.price
            return taker if within else None
        if (info.oracle_price <= order.price) if buy else (info.oracle_price >= order.price):
            return min(order.price, taker) if buy else max(order.price, taker)
        return None

    def reducible(self, order: PaperOrder) -> Decimal:
        """How much of the position an order on ``order.side`` can reduce."""
        size = self.position_size(order.market)
        if (order.side is OrderSide.SELL and size > 0) or (
            order.side is OrderSide.BUY and size < 0
        ):
            return abs(size)
        return Decimal(0)

    def margin_ok(self, market: str, side: OrderSide, quantity: Decimal, price: Decimal) -> bool:
        """Whether the account stays collateralized after this fill (reducing is always ok)."""
        position = self.positions.get(market)
        size = Decimal(0) if position is None else position.size
        entry = Decimal(0) if position is None else position.entry_price
        new_size, new_entry, realized = _trade(size, entry, side, quantity, price)
        if abs(new_size) <= abs(size):
            return True
        balance = self.account.balance + realized - self._fee(quantity, price)
        return self.free_collateral(balance, (market, new_size, new_entry)) >= 0

    def _fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = 60
            return _ledger(self.taker_fee * quantity * price)

    def apply(
        self, order: PaperOrder, quantity: Decimal, price: Decimal, now: datetime
    ) -> PaperFill:
        """Book a fill: position, realized PnL, fee, balance, the order and the fill row."""
        position = self.positions.get(order.market)
        if position is None:
            position = PaperPosition(
                user_id=order.user_id,
                market=order.market,
                size=Decimal(0),
                entry_price=Decimal(0),
                realized_pnl=Decimal(0),
                updated_at=now,
            )
            self.repo.add(position)
            self.positions[order.market] = position
        new_size, new_entry, realized = _trade(
            position.size, position.entry_price, order.side, quantity, price
        )
        fee = self._fee(quantity, price)
        position.size = new_size
        position.entry_price = new_entry
        position.realized_pnl += realized
        position.updated_at = now
        self.account.balance += realized - fee
        order.filled_size += quantity
        order.status = "FILLED"
        order.updated_at = now
        fill = PaperFill(
            user_id=order.user_id,
            paper_order_id=order.id,
            market=order.market,
            side=order.side,
            size=quantity,
            price=price,
            fee=fee,
            created_at=now,
        )
        self.repo.add(fill)
        return fill


class PaperExchange:
    """The simulated venue of one user (``owner_address`` ``paper:<user id>``, subaccount 0).

    Implements :class:`core.exchange.port.Exchange`. Each write is one transaction on its own
    session that locks the user's ``paper_accounts`` row first (created with
    ``starting_balance`` on first use).

    Args:
        sessionmaker: Session factory; the venue commits its own transactions.
        user_id: The trader (``users.id``).
        markets: Markets and live oracle prices (the Indexer client in production).
        starting_balance: Virtual USDC of a new paper account.
        taker_fee: Fee rate on the notional of every fill.
        slippage: Fraction fills trade away from the oracle, against the trader.

    Raises:
        ValueError: A negative fee, a slippage outside ``[0, 1)`` or a non-positive balance.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        user_id: int,
        markets: MarketSource,
        *,
        starting_balance: Decimal = DEFAULT_STARTING_BALANCE,
        taker_fee: Decimal = DEFAULT_TAKER_FEE,
        slippage: Decimal = DEFAULT_SLIPPAGE,
    ) -> None:
        if starting_balance <= 0:
            raise ValueError("the starting balance must be positive")
        if taker_fee < 0:
            raise ValueError("the taker fee cannot be negative")
        if not 0 <= slippage < 1:
            raise ValueError("the slippage must be at least 0 and below 1")
        self._sessionmaker = sessionmaker
        self._user_id = user_id
        self._markets = markets
        self._starting_balance = starting_balance
        self._taker_fee = taker_fee
        self._slippage = slippage
        self._log = get_logger(__name__, user_id=user_id, paper=True)

    # ------------------------------------------------------------------ identity

    @property
    def is_paper(self) -> bool:
        """Always True: nothing is ever sent to a node."""
        return True

    @property
    def capabilities(self) -> VenueCapabilities:
        """dYdX's capabilities: the paper venue mimics the chain."""
        return CAPABILITIES

    @property
    def owner_address(self) -> str:
        """``paper:<user id>``."""
        return f"paper:{self._user_id}"

    @property
    def subaccount_number(self) -> int:
        """Always 0."""
        return 0

    @property
    def user_id(self) -> int:
        """The trader whose venue this is."""
        return self._user_id

    @staticmethod
    async def users_with_live_orders(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
        """Ids of the users with open or untriggered paper orders (for the trigger cron).

        Args:
            sessionmaker: Session factory.
        """
        async with sessionmaker() as session:
            return await PaperRepository(session).users_with_live_orders()

    # ------------------------------------------------------------------ reads

    async def block_height(self) -> int:
        """A pseudo block height derived from the clock (two per second, like dYdX)."""
        return _pseudo_height(time.time())

    async def market(self, ticker: str) -> MarketInfo:
        """One market with a fresh oracle price.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._markets.market(ticker)

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._markets.markets()

    async def account(self) -> Account:
        """Equity (balance plus unrealized PnL at the oracle) and free collateral (equity
        minus initial margin).

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        markets = await self._markets.markets()
        async with self._sessionmaker() as session:
            repo = PaperRepository(session)
            account = await repo.get_account(self._user_id)
            balance = self._starting_balance if account is None else account.balance
            positions = await repo.positions(self._user_id)
        equity = balance
        margin = Decimal(0)
        for position in positions:
            info = markets.get(position.market)
            oracle = position.entry_price if info is None else info.oracle_price
            fraction = Decimal(1) if info is None else info.initial_margin_fraction
            equity += position.size * (oracle - position.entry_price)
            margin += abs(position.size) * oracle * fraction
        return Account(equity=equity, free_collateral=equity - margin)

    async def positions(self) -> list[Position]:
        """Open positions, unrealized PnL at the oracle.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        markets = await self._markets.markets()
        async with self._sessionmaker() as session:
            rows = await PaperRepository(session).positions(self._user_id)
        result = []
        for row in rows:
            if row.size == 0:
                continue
            info = markets.get(row.market)
            oracle = row.entry_price if info is None else info.oracle_price
            result.append(
                Position(
                    market=row.market,
                    side=PositionSide.LONG if row.size > 0 else PositionSide.SHORT,
                    size=abs(row.size),
                    entry_price=row.entry_price,
                    unrealized_pnl=row.size * (oracle - row.entry_price),
                    realized_pnl=row.realized_pnl,
                )
            )
        return result

    async def open_orders(self, market: str | None = None) -> list[OpenOrder]:
        """Open and untriggered orders (expired ones excluded), oldest first."""
        height, now = await self.block_height(), utcnow()
        async with self._sessionmaker() as session:
            rows = await PaperRepository(session).live_orders(self._user_id, market)
        orders = [_open_order(row, height, now) for row in rows]
        return [order for order in orders if order.status in LIVE_STATUSES]

    async def fills(self, market: str | None = None, limit: int = 100) -> list[Fill]:
        """Latest fills, newest first (all taker fills)."""
        async with self._sessionmaker() as session:
            rows = await PaperRepository(session).fills(self._user_id, market, limit)
        return [_fill(row) for row in rows]

    async def find_order(self, market: str, client_id: int, flags: OrderFlags) -> OpenOrder | None:
        """The order with this id in any status (OPEN, UNTRIGGERED, FILLED, CANCELED), or None
        when it was never accepted."""
        height, now = await self.block_height(), utcnow()
        async with self._sessionmaker() as session:
            row = await PaperRepository(session).find_order(
                self._user_id, market, client_id, int(flags)
            )
        return None if row is None else _open_order(row, height, now)

    # ------------------------------------------------------------------ signing

    async def sign_order(self, request: OrderRequest) -> SignedTx:
        """Encode an order canonically (deterministic bytes, SHA-256 hash).

        Raises:
            GridError: Size, price or trigger price is not on the market's grid.
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        self._check_grid(request, await self._markets.market(request.market))
        return _signed(_order_payload(request, self.owner_address))

    async def sign_cancel(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> SignedTx:
        """Encode the cancel of one of our orders.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer could not answer.
            ValueError: ``good_til_block_time`` is naive.
        """
        await self._markets.market(market)
        if good_til_block_time is not None and good_til_block_time.tzinfo is None:
            raise ValueError("good_til_block_time must be timezone-aware")
        tx = _CancelTx(market, client_id, OrderFlags(flags), good_til_block, good_til_block_time)
        return _signed(_cancel_payload(tx, self.owner_address))

    @staticmethod
    def _check_grid(request: OrderRequest, info: MarketInfo) -> None:
        grid.check_size(request.size, info)
        grid.check_price(request.price, info)
        if request.trigger_price is not None:
            grid.check_price(request.trigger_price, info)

    # ------------------------------------------------------------------ writes

    async def place_order(self, request: OrderRequest) -> PlaceResult:
        """Sign and broadcast an order (see :meth:`broadcast`).

        Raises:
            GridError: Size or price is not on the market's grid (nothing stored).
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            RetryableExchangeError: The short-term expiry block is out of the window.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self.broadcast(await self.sign_order(request))

    async def cancel_order(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> CancelResult:
        """Sign and broadcast the cancel of a resting order.

        Raises:
            PermanentExchangeError: The order does not exist or no longer rests (``clob`` 2
                for short-term orders, 3006 for stateful ones).
            ExchangeUnavailableError: The Indexer could not answer.
        """
        signed = await self.sign_cancel(
            market,
            client_id,
            flags,
            good_til_block=good_til_block,
            good_til_block_time=good_til_block_time,
        )
        result = await self.broadcast(signed)
        return CancelResult(
            tx_hash=result.tx_hash,
            code=result.code,
            codespace=result.codespace,
            raw_log=result.raw_log,
            tx_bytes=result.tx_bytes,
            already_placed=result.already_placed,
        )

    async def broadcast(self, signed: SignedTx) -> PlaceResult:
        """Execute signed paper bytes (an order or a cancel); nothing leaves the process.

        The hash is recomputed from the bytes. Bytes already broadcast answer ``sdk`` 19
        (:attr:`PlaceResult.already_placed`) and change nothing.

        Raises:
            PermanentExchangeError: Unreadable bytes (``sdk`` 2), a reused client id
                (``clob`` 3005, or 24 / 3008 once that order filled / was cancelled), nothing
                to reduce (``clob`` 2001), not enough collateral (``clob`` 3007), a post-only
                order that would trade (``clob`` 2003), an order or cancel of an unknown or
                finished order, and the chain's expiry and market-status refusals; reasons
                as :func:`core.exchange.dydx.errors.error_from_chain` gives them.
            RetryableExchangeError: The short-term expiry block is out of the window.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        try:
            decoded = _decode(signed.tx_bytes, self.owner_address)
        except _MalformedError as exc:
            self._log.warning("paper_tx_refused", error=str(exc))
            raise _chain_error("sdk", 2, f"paper: {exc}") from None
        tx_hash = _tx_hash(signed.tx_bytes)
        # Read prices before locking: the lock is never held across a network call.
        markets = await self._markets.markets()
        now, height = utcnow(), await self.block_height()
        async with self._sessionmaker() as session, session.begin():
            repo = PaperRepository(session)
            account = await repo.lock_account(self._user_id, self._starting_balance)
            if isinstance(decoded, _CancelTx):
                await self._cancel(repo, decoded, height, now)
            else:
                if await repo.order_by_tx_hash(tx_hash) is not None:
                    self._log.info("paper_tx_already_broadcast", tx_hash=tx_hash)
                    return PlaceResult(
                        tx_hash=tx_hash,
                        code=19,
                        codespace="sdk",
                        raw_log=_ALREADY_BROADCAST_LOG,
                        tx_bytes=signed.tx_bytes,
                        already_placed=True,
                    )
                book = _Book(
                    repo,
                    account,
                    await repo.positions(self._user_id),
                    markets,
                    taker_fee=self._taker_fee,
                    slippage=self._slippage,
                )
                await self._place(book, decoded, tx_hash, height, now)
        return PlaceResult(
            tx_hash=tx_hash, code=0, codespace="", raw_log="", tx_bytes=signed.tx_bytes
        )

    async def _cancel(
        self, repo: PaperRepository, tx: _CancelTx, height: int, now: datetime
    ) -> None:
        order = await repo.find_order(self._user_id, tx.market, tx.client_id, int(tx.flags))
        if order is None or _status(order, height, now) not in LIVE_STATUSES:
            code = 2 if tx.flags is OrderFlags.SHORT_TERM else 3006
            raise _chain_error("clob", code, "paper: order to cancel not found")
        order.status = "CANCELED"
        order.updated_at = now
        self._log.info("paper_order_cancelled", order_id=order.id, market=order.market)

    async def _place(
        self, book: _Book, request: OrderRequest, tx_hash: str, height: int, now: datetime
    ) -> None:
        info = self._validate(book, request, height, now)
        existing = await book.repo.find_order(
            self._user_id, request.market, request.client_id, int(request.flags)
        )
        if existing is not None:
            code = {"FILLED": 24, "CANCELED": 3008}.get(_status(existing, height, now), 3005)
            raise _chain_error("clob", code, "paper: client id already used")
        order = PaperOrder(
            user_id=self._user_id,
            tx_hash=tx_hash,
            client_id=request.client_id,
            order_flags=int(request.flags),
            market=request.market,
            side=request.side,
            kind=request.kind.value,
            time_in_force=request.time_in_force.value,
            size=request.size,
            price=request.price,
            trigger_price=request.trigger_price,
            reduce_only=request.reduce_only,
            status="OPEN",
            filled_size=Decimal(0),
            good_til_block=request.good_til_block,
            good_til_block_time=request.good_til_block_time,
            created_at=now,
            updated_at=now,
        )
        if request.reduce_only and book.reducible(order) == 0:
            raise _chain_error("clob", 2001, "paper: reduce-only order with nothing to reduce")
        book.repo.add(order)
        await book.repo.flush()  # the fill rows need the order's id
        if request.kind in (OrderKind.STOP, OrderKind.TAKE_PROFIT):
            self._check_resting_margin(book, order)
            order.status = "UNTRIGGERED"
            self._log.info("paper_order_untriggered", order_id=order.id, market=order.market)
            return
        price = book.fill_price(order, info)
        if price is None:
            if request.kind is OrderKind.MARKET or request.time_in_force is TimeInForce.IOC:
                order.status = "CANCELED"
                self._log.info("paper_order_not_filled", order_id=order.id, market=order.market)
            else:
                self._check_resting_margin(book, order)
                self._log.info("paper_order_resting", order_id=order.id, market=order.market)
            return
        if request.time_in_force is TimeInForce.POST_ONLY:
            raise _chain_error("clob", 2003, "paper: post-only order would cross")
        self._execute(book, order, price, now, refuse=True)

    def _validate(
        self, book: _Book, request: OrderRequest, height: int, now: datetime
    ) -> MarketInfo:
        """The chain's stateless checks, in its codes; returns the order's market."""
        info = book.markets.get(request.market)
        if info is None:
            raise _chain_error("clob", 8, "paper: market not listed")
        if not info.is_active:
            raise _chain_error("clob", 34, f"paper: market status {info.status}")
        try:
            self._check_grid(request, info)
        except grid.GridError as exc:
            raise _chain_error("clob", 12, f"paper: {exc.reason}") from None
        if request.good_til_block is not None:
            if request.good_til_block <= height:
                raise _chain_error("clob", 10, "paper: good_til_block already passed")
            if request.good_til_block > height + CAPABILITIES.short_term_window:
                raise _chain_error("clob", 11, "paper: good_til_block beyond the window")
        if request.good_til_block_time is not None:
            if request.good_til_block_time <= now:
                raise _chain_error("clob", 3003, "paper: good_til_block_time already passed")
            if request.good_til_block_time > now + MAX_STATEFUL_LIFETIME:
                raise _chain_error("clob", 3004, "paper: good_til_block_time too far")
        if request.flags is OrderFlags.LONG_TERM and request.time_in_force is TimeInForce.IOC:
            raise _chain_error("clob", 3002, "paper: long-term IOC order")
        return info

    @staticmethod
    def _check_resting_margin(book: _Book, order: PaperOrder) -> None:
        """Refuse a resting order the account could not afford if it filled at its price."""
        if order.reduce_only:
            return
        if not book.margin_ok(order.market, order.side, order.size, order.price):
            raise _chain_error("clob", 3007, "paper: undercollateralized")

    def _execute(
        self, book: _Book, order: PaperOrder, price: Decimal, now: datetime, *, refuse: bool
    ) -> PaperFill | None:
        """Fill the rest of a marketable order (reduce-only clipped), margin permitting.

        With ``refuse`` (at broadcast) a failed check raises the chain's error and the whole
        transaction rolls back; otherwise (a later trigger) the order is cancelled, as the
        chain cancels orders that became invalid.
        """
        quantity = order.size - order.filled_size
        if order.reduce_only:
            quantity = min(quantity, book.reducible(order))
            if quantity == 0:
                if refuse:
                    raise _chain_error("clob", 2001, "paper: nothing to reduce")
                self._cancel_live(order, now, "nothing_to_reduce")
                return None
        if not book.margin_ok(order.market, order.side, quantity, price):
            if refuse:
                raise _chain_error("clob", 3007, "paper: undercollateralized")
            self._cancel_live(order, now, "undercollateralized")
            return None
        fill = book.apply(order, quantity, price, now)
        self._log.info(
            "paper_order_filled",
            order_id=order.id,
            market=order.market,
            side=order.side.value,
            size=str(quantity),
            price=str(price),
            fee=str(fill.fee),
        )
        return fill

    def _cancel_live(self, order: PaperOrder, now: datetime, why: str) -> None:
        order.status = "CANCELED"
        order.updated_at = now
        self._log.info("paper_order_cancelled", order_id=order.id, market=order.market, why=why)

    async def check_triggers(self) -> list[Fill]:
        """Run the venue's matching for this user: expire stale orders, trigger conditional
        orders whose trigger the oracle crossed, and fill resting orders the oracle reached.

        A sell STOP triggers at ``oracle <= trigger`` and a sell TAKE_PROFIT at
        ``oracle >= trigger`` (mirrored for buys). A worker cron calls this periodically for
        :meth:`users_with_live_orders`.

        Returns:
            The fills made, oldest first.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer (nothing changed).
        """
        markets = await self._markets.markets()
        now, height = utcnow(), await self.block_height()
        fills: list[PaperFill] = []
        async with self._sessionmaker() as session, session.begin():
            repo = PaperRepository(session)
            account = await repo.lock_account(self._user_id, self._starting_balance)
            orders = await repo.live_orders(self._user_id)
            if not orders:
                return []
            book = _Book(
                repo,
                account,
                await repo.positions(self._user_id),
                markets,
                taker_fee=self._taker_fee,
                slippage=self._slippage,
            )
            for order in orders:
                fill = self._match(book, order, height, now)
                if fill is not None:
                    fills.append(fill)
            await repo.flush()  # assigns the fills' ids
            return [_fill(fill) for fill in fills]

    def _match(
        self, book: _Book, order: PaperOrder, height: int, now: datetime
    ) -> PaperFill | None:
        if _status(order, height, now) == "CANCELED":
            self._cancel_live(order, now, "expired")
            return None
        info = book.markets.get(order.market)
        if info is None:
            return None
        if order.status == "UNTRIGGERED":
            if not self._triggered(order, info.oracle_price):
                return None
            order.status = "OPEN"
            order.updated_at = now
            self._log.info("paper_order_triggered", order_id=order.id, market=order.market)
        price = book.fill_price(order, info)
        if price is None:
            if order.time_in_force == TimeInForce.IOC:
                self._cancel_live(order, now, "not_marketable")
                return None
            return None
        return self._execute(book, order, price, now, refuse=False)

    @staticmethod
    def _triggered(order: PaperOrder, oracle: Decimal) -> bool:
        trigger = order.trigger_price
        if trigger is None:
            return True
        # A STOP fires when the price moves against the position the order closes; a
        # TAKE_PROFIT when it moves in its favour.
        falls = (order.side is OrderSide.SELL) == (order.kind == OrderKind.STOP)
        return oracle <= trigger if falls else oracle >= trigger

    async def reset(self, balance: Decimal | None = None) -> None:
        """Restart the paper account: cancel live orders, drop positions (and their realized
        PnL), set the balance. Orders and fills stay as history.

        Args:
            balance: The new virtual balance; the starting balance when None.

        Raises:
            ValueError: ``balance`` is not positive.
        """
        new_balance = self._starting_balance if balance is None else balance
        if not new_balance.is_finite() or new_balance <= 0:
            raise ValueError("the paper balance must be positive")
        now = utcnow()
        async with self._sessionmaker() as session, session.begin():
            repo = PaperRepository(session)
            account = await repo.lock_account(self._user_id, new_balance)
            for order in await repo.live_orders(self._user_id):
                self._cancel_live(order, now, "reset")
            await repo.delete_positions(self._user_id)
            account.balance = _ledger(new_balance)
        self._log.info("paper_account_reset", balance=str(new_balance))
