"""From an alert to an order: sizing, position semantics and risk limits (pure functions).

Position semantics (documented in docs/architecture.md, "How alerts are executed"):

* ``action: close`` or ``position: flat`` closes the whole position, reduce-only; nothing to
  do when already flat.
* A buy (sell) while flat or long (short) opens or adds the sized amount.
* A sell (buy) while long (short):

  - when the alert says the strategy is now on the other side (``position: short`` /
    ``reverse: true``): with the *flip* preference, one order closes the position and opens
    the sized amount on the other side; with *reduce only*, the position is only closed;
  - without a target position: with *flip*, the sized amount is sold (it may cross zero);
    with *reduce only*, a reduce-only order of at most the position's size.

Risk limits apply to every order that can add exposure; a reduce-only order (closing) is
always allowed, whatever the limits, compliance status or allowed-markets list say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from core.alerts.schema import Action, AlertOrder, OrderType, TargetPosition
from core.domain.compliance import ComplianceStatus
from core.domain.preferences import MAX_SLIPPAGE_PCT, FlipMode, Preferences, SizeKind
from core.domain.states import OrderPurpose, OrderSide, PositionSide
from core.exchange.grid import GridError, round_price_to_tick, round_size_down, worst_price
from core.exchange.orders import OrderKind, TimeInForce
from core.exchange.port import Account, MarketInfo, Position
from core.texts import refusals

HUNDRED = Decimal(100)
#: Resting limit orders live this long on the book unless filled or cancelled.
LIMIT_ORDER_LIFETIME = timedelta(days=7)


class RefusalKind(StrEnum):
    """Why an alert was not turned into an order."""

    COMPLIANCE = "COMPLIANCE"
    MARKET_NOT_ALLOWED = "MARKET_NOT_ALLOWED"
    MARKET_NOT_TRADING = "MARKET_NOT_TRADING"
    SIZE = "SIZE"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_LEVERAGE = "MAX_LEVERAGE"
    MAX_POSITIONS = "MAX_POSITIONS"
    DAILY_LOSS = "DAILY_LOSS"
    NO_EQUITY = "NO_EQUITY"


class PlanRefusedError(Exception):
    """The alert breaks a rule; nothing is sent.

    Attributes:
        kind: Which rule.
        message: Plain words: what happened and what to change.
    """

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class NothingToDoError(Exception):
    """The alert asks for nothing (e.g. close while flat). ``str(exc)`` says why."""


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """The order an alert becomes, in human units on the market's grids.

    Attributes:
        market: Ticker.
        side: BUY or SELL.
        size: Base units, on the step grid.
        kind: MARKET or LIMIT.
        price: Worst acceptable price (market) or limit price, on the tick grid.
        reduce_only: Whether the order may only reduce the position.
        time_in_force: IOC for market and reduce-only orders, else GTT.
        purpose: ENTRY (opens, adds or flips) or CLOSE (reduce-only).
        reference_price: The price the alert referred to, else the oracle price.
        notional: ``size * oracle``, in USD.
        position_before: Signed position size before the order (positive long).
        entry_before: Entry price of that position, if any.
        good_til_block_time: Expiry of a resting limit order (None for short-term orders).
    """

    market: str
    side: OrderSide
    size: Decimal
    kind: OrderKind
    price: Decimal
    reduce_only: bool
    time_in_force: TimeInForce
    purpose: OrderPurpose
    reference_price: Decimal
    notional: Decimal
    position_before: Decimal
    entry_before: Decimal | None
    good_til_block_time: datetime | None = None

    @property
    def is_short_term(self) -> bool:
        """Whether the order is short-term (expires by block height)."""
        return self.good_til_block_time is None


def signed_size(position: Position | None) -> Decimal:
    """Signed position size: positive long, negative short, zero when flat."""
    if position is None:
        return Decimal(0)
    return position.size if position.side is PositionSide.LONG else -position.size


def _requested_size(
    alert: AlertOrder, prefs: Preferences, market: MarketInfo, account: Account
) -> Decimal:
    """The alert's size in base units, before rounding to the step."""
    oracle = market.oracle_price
    if alert.size is not None:
        return alert.size
    if alert.size_usd is not None:
        return alert.size_usd / oracle
    if alert.size_pct is not None:
        return account.equity * alert.size_pct / HUNDRED / oracle
    if prefs.default_size_kind is SizeKind.BASE:
        return prefs.default_size_value
    if prefs.default_size_kind is SizeKind.PCT:
        return account.equity * prefs.default_size_value / HUNDRED / oracle
    return prefs.default_size_value / oracle


def _slippage(alert: AlertOrder, prefs: Preferences) -> Decimal:
    pct = alert.slippage_pct if alert.slippage_pct is not None else prefs.slippage_pct
    return min(pct, MAX_SLIPPAGE_PCT) / HUNDRED


def plan_order(
    alert: AlertOrder,
    *,
    prefs: Preferences,
    market: MarketInfo,
    account: Account,
    positions: list[Position],
    compliance: ComplianceStatus | None,
    realized_today: Decimal,
    now: datetime | None = None,
) -> OrderPlan:
    """Turn a validated alert into an order, or refuse it.

    Args:
        alert: The alert.
        prefs: The trader's preferences.
        market: The alert's market with a fresh oracle price.
        account: Equity and free collateral.
        positions: Every open position of the trading subaccount.
        compliance: The owner's last compliance screen (None: never screened).
        realized_today: Realized PnL since the start of the trader's day (negative: loss).
        now: Current time (UTC), for a limit order's expiry.

    Raises:
        NothingToDoError: Nothing to do (closing while flat).
        PlanRefusedError: A rule refuses the order; ``message`` says which and what to do.
    """
    now = now or datetime.now(UTC)
    if compliance is ComplianceStatus.BLOCKED:
        raise PlanRefusedError(RefusalKind.COMPLIANCE, refusals.COMPLIANCE_BLOCKED)
    current = next((p for p in positions if p.market == market.ticker), None)
    held = signed_size(current)
    entry = current.entry_price if current is not None else None
    side = OrderSide.SELL if alert.action is Action.SELL else OrderSide.BUY
    against = (held > 0 and side is OrderSide.SELL) or (held < 0 and side is OrderSide.BUY)
    wants_other_side = alert.reverse or (
        alert.position is TargetPosition.SHORT
        if side is OrderSide.SELL
        else alert.position is TargetPosition.LONG
    )

    if alert.action is Action.CLOSE or alert.position is TargetPosition.FLAT:
        if held == 0:
            raise NothingToDoError(refusals.nothing_to_close(market.ticker))
        side = OrderSide.SELL if held > 0 else OrderSide.BUY
        return _finish(alert, prefs, market, side, abs(held), True, held, entry, now)

    try:
        sized = round_size_down(_requested_size(alert, prefs, market, account), market)
    except GridError:
        sized = Decimal(0)  # below one step: refused just below, with the market's minimum
    if against:
        if wants_other_side:
            if prefs.flip is FlipMode.REDUCE:
                return _finish(alert, prefs, market, side, abs(held), True, held, entry, now)
            size = abs(held) + sized
            reduce_only = False
        elif prefs.flip is FlipMode.REDUCE:
            size, reduce_only = min(sized, abs(held)), True
        else:
            size, reduce_only = sized, sized <= abs(held)
    else:
        size, reduce_only = sized, False
    if size < market.min_order_size or size <= 0:
        raise PlanRefusedError(
            RefusalKind.SIZE, refusals.below_minimum(market.ticker, market.min_order_size)
        )
    if reduce_only:
        return _finish(alert, prefs, market, side, size, True, held, entry, now)
    _check_limits(
        prefs=prefs,
        market=market,
        account=account,
        positions=positions,
        compliance=compliance,
        realized_today=realized_today,
        side=side,
        size=size,
        held=held,
    )
    return _finish(alert, prefs, market, side, size, False, held, entry, now)


def _check_limits(
    *,
    prefs: Preferences,
    market: MarketInfo,
    account: Account,
    positions: list[Position],
    compliance: ComplianceStatus | None,
    realized_today: Decimal,
    side: OrderSide,
    size: Decimal,
    held: Decimal,
) -> None:
    """Refuse an order that can add exposure when a limit says no."""
    ticker = market.ticker
    if compliance is not None and not compliance.may_open:
        raise PlanRefusedError(RefusalKind.COMPLIANCE, refusals.COMPLIANCE_CLOSE_ONLY)
    if not prefs.allows(ticker):
        raise PlanRefusedError(RefusalKind.MARKET_NOT_ALLOWED, refusals.market_not_allowed(ticker))
    if not market.is_active:
        raise PlanRefusedError(
            RefusalKind.MARKET_NOT_TRADING, refusals.market_not_trading(ticker, market.status)
        )
    limit = prefs.daily_loss_limit_usd
    if limit is not None and realized_today <= -limit:
        raise PlanRefusedError(RefusalKind.DAILY_LOSS, refusals.daily_loss(-realized_today, limit))
    if account.equity <= 0:
        raise PlanRefusedError(RefusalKind.NO_EQUITY, refusals.NO_EQUITY)
    notional = size * market.oracle_price
    if notional > prefs.max_notional_usd:
        raise PlanRefusedError(
            RefusalKind.MAX_NOTIONAL, refusals.above_max_notional(notional, prefs.max_notional_usd)
        )
    open_markets = {p.market for p in positions if p.size > 0}
    if held == 0 and ticker not in open_markets and len(open_markets) >= prefs.max_open_positions:
        raise PlanRefusedError(RefusalKind.MAX_POSITIONS, refusals.max_positions(len(open_markets)))
    after = held + (size if side is OrderSide.BUY else -size)
    exposure = abs(after) * market.oracle_price + sum(
        (p.size * _mark(p) for p in positions if p.market != ticker and p.size > 0),
        Decimal(0),
    )
    leverage = exposure / account.equity
    if leverage > prefs.max_leverage:
        raise PlanRefusedError(
            RefusalKind.MAX_LEVERAGE, refusals.above_max_leverage(leverage, prefs.max_leverage)
        )


def _mark(position: Position) -> Decimal:
    """A position's mark price from what the Indexer reports (entry + unrealized per unit)."""
    per_unit = position.unrealized_pnl / position.size
    return position.entry_price + (per_unit if position.side is PositionSide.LONG else -per_unit)


def _finish(
    alert: AlertOrder,
    prefs: Preferences,
    market: MarketInfo,
    side: OrderSide,
    size: Decimal,
    reduce_only: bool,
    held: Decimal,
    entry: Decimal | None,
    now: datetime,
) -> OrderPlan:
    """Price the order and pick its lifetime."""
    oracle = market.oracle_price
    reference = alert.price if alert.price is not None else oracle
    purpose = OrderPurpose.CLOSE if reduce_only else OrderPurpose.ENTRY
    try:
        if alert.order_type is OrderType.LIMIT and alert.price is not None:
            price = round_price_to_tick(alert.price, market, up=side is OrderSide.SELL)
            resting = not reduce_only  # the chain takes reduce-only only as short-term IOC
            return OrderPlan(
                market=market.ticker,
                side=side,
                size=size,
                kind=OrderKind.LIMIT,
                price=price,
                reduce_only=reduce_only,
                time_in_force=TimeInForce.GTT if resting else TimeInForce.IOC,
                purpose=purpose,
                reference_price=reference,
                notional=size * oracle,
                position_before=held,
                entry_before=entry,
                good_til_block_time=now + LIMIT_ORDER_LIFETIME if resting else None,
            )
        price = worst_price(side, oracle, _slippage(alert, prefs), market)
    except GridError as exc:
        raise PlanRefusedError(RefusalKind.SIZE, exc.reason) from None
    return OrderPlan(
        market=market.ticker,
        side=side,
        size=size,
        kind=OrderKind.MARKET,
        price=price,
        reduce_only=reduce_only,
        time_in_force=TimeInForce.IOC,
        purpose=purpose,
        reference_price=reference,
        notional=size * oracle,
        position_before=held,
        entry_before=entry,
    )


def protective_prices(
    alert: AlertOrder, side: OrderSide, fill_price: Decimal, market: MarketInfo
) -> tuple[Decimal | None, Decimal | None]:
    """Take-profit and stop-loss trigger prices for a position opened at ``fill_price``.

    ``tp_price``/``sl_price`` win over ``tp_pct``/``sl_pct``; a long's take-profit is above
    the fill and its stop below (mirrored for a short). Prices on the wrong side of the fill
    are dropped (they would trigger at once).

    Returns:
        ``(take_profit, stop_loss)``, each None when not asked for or not valid.
    """
    long = side is OrderSide.BUY
    take: Decimal | None = alert.tp_price
    if take is None and alert.tp_pct is not None:
        take = fill_price * (1 + alert.tp_pct / HUNDRED if long else 1 - alert.tp_pct / HUNDRED)
    stop: Decimal | None = alert.sl_price
    if stop is None and alert.sl_pct is not None:
        stop = fill_price * (1 - alert.sl_pct / HUNDRED if long else 1 + alert.sl_pct / HUNDRED)
    if take is not None:
        take = round_price_to_tick(take, market, up=not long)
        if (take <= fill_price) if long else (take >= fill_price):
            take = None
    if stop is not None:
        stop = round_price_to_tick(stop, market, up=long)
        if (stop >= fill_price) if long else (stop <= fill_price):
            stop = None
    return take, stop
