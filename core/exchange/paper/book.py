"""The paper venue's matching and fill engine: pure (no session, no clock, no network).

Orders fill against one infinitely deep counterparty at the live oracle price plus slippage
against the trader, and pay a taker fee. A :class:`Book` works on the rows of one locked
transaction; the rows it creates are left in :attr:`Book.staged` for the venue to store.

Fill rules:

* MARKET (short-term IOC): fills in full at ``oracle ± slippage`` (rounded to a tick against
  the trader) if that is within the worst acceptable price, else it is cancelled unfilled.
* LIMIT: marketable when the oracle is at or through the limit; it then fills at once at the
  better of the limit and ``oracle ± slippage``. Otherwise an IOC order is cancelled and any
  other order rests OPEN until :meth:`Book.match` sees the oracle cross it.
* STOP / TAKE_PROFIT rest UNTRIGGERED; once the oracle crosses the trigger they behave as a
  LIMIT order at their price (IOC: fill or cancel; otherwise fill or rest OPEN).
* Reduce-only orders are clipped to the opposite position; with nothing to reduce they are
  refused at broadcast and cancelled when they trigger later.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from core.db.models import PaperAccount, PaperFill, PaperOrder, PaperPosition
from core.db.repositories.paper import LIVE_STATUSES
from core.domain.states import OrderSide
from core.exchange.grid import worst_price
from core.exchange.orders import OrderFlags, OrderKind, TimeInForce
from core.exchange.paper.rules import chain_error
from core.exchange.port import MarketInfo

#: The ledger's precision (``Numeric(38, 18)``): stored amounts are rounded to it.
_LEDGER_QUANTUM = Decimal("1e-18")


def ledger(value: Decimal) -> Decimal:
    """Round to the ledger's precision, so memory and database hold the same number."""
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(_LEDGER_QUANTUM)


def trade(
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
            return new_size, ledger(weighted), Decimal(0)
        closed = min(abs(size), quantity)
        realized = closed * (price - entry) * (1 if size > 0 else -1)
    if new_size == 0:
        new_entry = Decimal(0)
    elif (new_size > 0) == (size > 0):
        new_entry = entry  # partly reduced: the rest keeps its entry
    else:
        new_entry = price  # flipped: the new side opened at this fill
    return new_size, new_entry, ledger(realized)


def status(order: PaperOrder, height: int, now: datetime) -> str:
    """The order's status, counting a live order past its expiry as cancelled."""
    if order.status in LIVE_STATUSES and (
        (order.good_til_block is not None and order.good_til_block < height)
        or (order.good_til_block_time is not None and order.good_til_block_time <= now)
    ):
        return "CANCELED"
    return order.status


def triggered(order: PaperOrder, oracle: Decimal) -> bool:
    """Whether the oracle crossed a conditional order's trigger price."""
    trigger = order.trigger_price
    if trigger is None:
        return True
    # A STOP fires when the price moves against the position the order closes; a
    # TAKE_PROFIT when it moves in its favour.
    falls = (order.side is OrderSide.SELL) == (order.kind == OrderKind.STOP)
    return oracle <= trigger if falls else oracle >= trigger


def cancel(
    order: PaperOrder | None, flags: OrderFlags, height: int, now: datetime, log: Any
) -> None:
    """Cancel an order on its owner's request (``order`` None: no such order).

    Raises:
        PermanentExchangeError: The order is unknown or no longer live (``clob`` 2 for
            short-term orders, 3006 for stateful ones).
    """
    if order is None or status(order, height, now) not in LIVE_STATUSES:
        code = 2 if flags is OrderFlags.SHORT_TERM else 3006
        raise chain_error("clob", code, "paper: order to cancel not found")
    order.status = "CANCELED"
    order.updated_at = now
    log.info("paper_order_cancelled", order_id=order.id, market=order.market)


def cancel_live(order: PaperOrder, now: datetime, why: str, log: Any) -> None:
    """Cancel a live order as the venue does on its own (expiry, trigger failure, reset)."""
    order.status = "CANCELED"
    order.updated_at = now
    log.info("paper_order_cancelled", order_id=order.id, market=order.market, why=why)


class Book:
    """The user's locked account, positions and the markets of one operation.

    Args:
        account: The user's locked paper account.
        positions: Every position row of the user.
        markets: Every listed market by ticker, with fresh oracle prices.
        taker_fee: Fee rate on the notional of every fill.
        slippage: Fraction fills trade away from the oracle, against the trader.
        log: The venue's logger.

    Attributes:
        staged: Rows created by fills (new positions, fills), oldest first, not yet stored.
    """

    def __init__(
        self,
        account: PaperAccount,
        positions: list[PaperPosition],
        markets: Mapping[str, MarketInfo],
        *,
        taker_fee: Decimal,
        slippage: Decimal,
        log: Any,
    ) -> None:
        self.account = account
        self.positions = {position.market: position for position in positions}
        self.markets = markets
        self.taker_fee = taker_fee
        self.slippage = slippage
        self.staged: list[PaperPosition | PaperFill] = []
        self._log = log

    def position_size(self, market: str) -> Decimal:
        """The signed size of the user's position in ``market`` (0 without one)."""
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
        taker = worst_price(side, info.oracle_price, self.slippage, info)
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
        new_size, new_entry, realized = trade(size, entry, side, quantity, price)
        if abs(new_size) <= abs(size):
            return True
        balance = self.account.balance + realized - self.fee(quantity, price)
        return self.free_collateral(balance, (market, new_size, new_entry)) >= 0

    def fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        """The taker fee of a fill, at the ledger's precision."""
        with localcontext() as ctx:
            ctx.prec = 60
            return ledger(self.taker_fee * quantity * price)

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
            self.staged.append(position)
            self.positions[order.market] = position
        new_size, new_entry, realized = trade(
            position.size, position.entry_price, order.side, quantity, price
        )
        fee = self.fee(quantity, price)
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
        self.staged.append(fill)
        return fill

    def accept(self, order: PaperOrder, info: MarketInfo, now: datetime) -> None:
        """Match a newly stored order (it has its id): rest, cancel or fill it.

        Raises:
            PermanentExchangeError: Refused, and the whole transaction must roll back: not
                enough collateral (``clob`` 3007), a post-only order that would trade
                (``clob`` 2003), nothing left to reduce (``clob`` 2001).
        """
        if order.kind in (OrderKind.STOP, OrderKind.TAKE_PROFIT):
            self.check_resting_margin(order)
            order.status = "UNTRIGGERED"
            self._log.info("paper_order_untriggered", order_id=order.id, market=order.market)
            return
        price = self.fill_price(order, info)
        if price is None:
            if order.kind == OrderKind.MARKET or order.time_in_force == TimeInForce.IOC:
                order.status = "CANCELED"
                self._log.info("paper_order_not_filled", order_id=order.id, market=order.market)
            else:
                self.check_resting_margin(order)
                self._log.info("paper_order_resting", order_id=order.id, market=order.market)
            return
        if order.time_in_force == TimeInForce.POST_ONLY:
            raise chain_error("clob", 2003, "paper: post-only order would cross")
        self.execute(order, price, now, refuse=True)

    def match(self, order: PaperOrder, height: int, now: datetime) -> PaperFill | None:
        """Match a live order later: expire it, trigger it, fill it, or leave it.

        Returns:
            The fill made, if any.
        """
        if status(order, height, now) == "CANCELED":
            cancel_live(order, now, "expired", self._log)
            return None
        info = self.markets.get(order.market)
        if info is None:
            return None
        if order.status == "UNTRIGGERED":
            if not triggered(order, info.oracle_price):
                return None
            order.status = "OPEN"
            order.updated_at = now
            self._log.info("paper_order_triggered", order_id=order.id, market=order.market)
        price = self.fill_price(order, info)
        if price is None:
            if order.time_in_force == TimeInForce.IOC:
                cancel_live(order, now, "not_marketable", self._log)
                return None
            return None
        return self.execute(order, price, now, refuse=False)

    def check_resting_margin(self, order: PaperOrder) -> None:
        """Refuse a resting order the account could not afford if it filled at its price.

        Raises:
            PermanentExchangeError: ``clob`` 3007 (undercollateralized).
        """
        if order.reduce_only:
            return
        if not self.margin_ok(order.market, order.side, order.size, order.price):
            raise chain_error("clob", 3007, "paper: undercollateralized")

    def execute(
        self, order: PaperOrder, price: Decimal, now: datetime, *, refuse: bool
    ) -> PaperFill | None:
        """Fill the rest of a marketable order (reduce-only clipped), margin permitting.

        With ``refuse`` (at broadcast) a failed check raises the chain's error and the whole
        transaction rolls back; otherwise (a later trigger) the order is cancelled, as the
        chain cancels orders that became invalid.

        Raises:
            PermanentExchangeError: Only with ``refuse``: ``clob`` 2001 or 3007.
        """
        quantity = order.size - order.filled_size
        if order.reduce_only:
            quantity = min(quantity, self.reducible(order))
            if quantity == 0:
                if refuse:
                    raise chain_error("clob", 2001, "paper: nothing to reduce")
                cancel_live(order, now, "nothing_to_reduce", self._log)
                return None
        if not self.margin_ok(order.market, order.side, quantity, price):
            if refuse:
                raise chain_error("clob", 3007, "paper: undercollateralized")
            cancel_live(order, now, "undercollateralized", self._log)
            return None
        fill = self.apply(order, quantity, price, now)
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
