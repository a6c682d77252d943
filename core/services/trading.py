"""What a trader asks of their account from the bot: positions, orders, close, panic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Order
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import OrderPurpose, OrderSide, OrderState
from core.exchange.errors import ExchangeError, PermanentExchangeError
from core.exchange.orders import OrderFlags
from core.exchange.port import Account, Exchange, OpenOrder, Position
from core.exchange.provider import ExchangeProvider, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.execution.pipeline import ExecutionService
from core.services.protection.manual import StopInput, StopMove
from core.texts import trade as texts

__all__ = [
    "BracketView",
    "CloseResult",
    "LegView",
    "NothingToCloseError",
    "PanicReport",
    "TradingNotReadyError",
    "TradingService",
]


#: Leg states /positions shows: live ones and refused ones (with their reason).
_SHOWN_LEG_STATES = frozenset(
    {
        OrderState.RECEIVED,
        OrderState.SUBMITTING,
        OrderState.SUBMITTED,
        OrderState.UNKNOWN,
        OrderState.PARTIALLY_FILLED,
        OrderState.REJECTED,
    }
)


class NothingToCloseError(Exception):
    """There is no open position in that market.

    Attributes:
        market: The ticker asked for.
    """

    def __init__(self, market: str) -> None:
        super().__init__(market)
        self.market = market


@dataclass(frozen=True, slots=True)
class CloseResult:
    """What closing one position did.

    Attributes:
        market: Ticker.
        side: Side of the closing order.
        size: Size of the closing order.
        state: Final (or current) state of the order.
        filled_size: Size filled.
        average_price: Average fill price, if anything filled.
        reason: Why it did not fill completely, in plain words.
        paper: Whether on the paper venue.
    """

    market: str
    side: OrderSide
    size: Decimal
    state: OrderState
    filled_size: Decimal
    average_price: Decimal | None
    reason: str | None
    paper: bool


@dataclass(frozen=True, slots=True)
class PanicReport:
    """What ``/panic`` did.

    Attributes:
        cancelled: Open orders whose cancel the exchange accepted.
        closed: One result per position closed (or tried).
        failures: Plain-words problems (an order not cancelled, a position not closed).
        paper: Whether on the paper venue.
    """

    cancelled: int
    closed: list[CloseResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    paper: bool = False


@dataclass(frozen=True, slots=True)
class LegView:
    """One take-profit / stop-loss leg as /positions shows it.

    Attributes:
        purpose: TAKE_PROFIT or STOP_LOSS.
        trigger: Trigger price.
        size: Size it closes.
        state: Its order state (SUBMITTED: resting; REJECTED: refused, see ``error``).
        error: Why the chain refused it.
    """

    purpose: OrderPurpose
    trigger: Decimal | None
    size: Decimal
    state: OrderState
    error: str | None


@dataclass(frozen=True, slots=True)
class BracketView:
    """One entry's protection on a position.

    Attributes:
        bracket_id: The bracket.
        market: Ticker.
        stop_asked: Whether it asked for a stop-loss.
        trail_pct: The trailing distance it asked for, if any.
        legs: Its current legs (resting, being placed or refused).
    """

    bracket_id: int
    market: str
    stop_asked: bool
    trail_pct: Decimal | None
    legs: list[LegView] = field(default_factory=list)


class TradingService:
    """Live account views and manual orders for one trader at a time.

    Args:
        sessionmaker: Database sessions.
        exchanges: Builds each trader's exchange.
        execution: The execution pipeline a manual close runs through, like an alert's order.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchanges: ExchangeProvider,
        execution: ExecutionService,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._exchanges = exchanges
        self._execution = execution
        self._log = get_logger(__name__)

    async def _open(self, user_id: int) -> tuple[Exchange, Preferences]:
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise TradingNotReadyError(texts.SEND_START_FIRST)
            prefs = Preferences.from_json(user.settings)
        return await self._exchanges.for_user(user_id, prefs), prefs

    async def positions(self, user_id: int) -> list[Position]:
        """Open positions, live from the exchange."""
        exchange, _ = await self._open(user_id)
        return await exchange.positions()

    async def open_orders(self, user_id: int) -> list[OpenOrder]:
        """Open orders, live from the exchange."""
        exchange, _ = await self._open(user_id)
        return await exchange.open_orders()

    async def protection(self, user_id: int, markets: list[str]) -> dict[str, list[BracketView]]:
        """The open brackets of the trader's positions in ``markets`` (current venue), with
        the legs of their current placement, oldest first."""
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                return {}
            paper = Preferences.from_json(user.settings).paper
            views: dict[str, list[BracketView]] = {}
            for market in markets:
                brackets = await uow.brackets.open_in_group(user_id, paper, market)
                legs = await uow.brackets.legs([b.id for b in brackets])
                views[market] = [
                    BracketView(
                        bracket_id=bracket.id,
                        market=market,
                        stop_asked=bracket.sl_price is not None or bracket.sl_pct is not None,
                        trail_pct=bracket.trail_pct,
                        legs=[
                            LegView(leg.purpose, leg.trigger_price, leg.size, leg.state, leg.error)
                            for leg in legs
                            if leg.bracket_id == bracket.id
                            and leg.generation == bracket.generation
                            and leg.state in _SHOWN_LEG_STATES
                        ],
                    )
                    for bracket in brackets
                ]
        return views

    async def check_protection_change(
        self, user_id: int, market: str, stop: StopInput, take: StopInput | None, *, adding: bool
    ) -> None:
        """Check a stop move or new protection without placing anything (see
        :meth:`ProtectionService.check_change`)."""
        await self._execution.protection.check_change(user_id, market, stop, take, adding=adding)

    async def move_stop(self, user_id: int, market: str, stop: StopInput) -> StopMove:
        """Move the position's stop-loss (see :meth:`ProtectionService.move_stop`)."""
        return await self._execution.protection.move_stop(user_id, market, stop)

    async def protect_position(
        self, user_id: int, market: str, stop: StopInput, take: StopInput | None
    ) -> StopMove:
        """Add a stop-loss (and take-profit) to an unprotected position (see
        :meth:`ProtectionService.protect_position`)."""
        return await self._execution.protection.protect_position(user_id, market, stop, take)

    async def remove_take_profit(self, user_id: int, market: str) -> int:
        """Cancel the position's take-profit (see
        :meth:`ProtectionService.remove_take_profit`)."""
        return await self._execution.protection.remove_take_profit(user_id, market)

    async def account(self, user_id: int) -> Account:
        """Equity and free collateral, live from the exchange."""
        exchange, _ = await self._open(user_id)
        return await exchange.account()

    async def close_market(
        self, user_id: int, market: str, *, resume_since: datetime | None = None
    ) -> CloseResult:
        """Close the position in ``market`` with a reduce-only market order.

        Args:
            user_id: The trader.
            market: The ticker.
            resume_since: When a run of the same request that may have sent a close began
                (a retried job): a manual close of this market sent since then is reported
                instead of closing again.

        Raises:
            NothingToCloseError: No open position there.
            TradingNotReadyError: The trader cannot trade.
            ExchangeError: The exchange could not be asked or refused.
        """
        exchange, prefs = await self._open(user_id)
        ticker = market.strip().upper()
        if resume_since is not None:
            sent = await self._sent_since(user_id, resume_since, exchange.is_paper, ticker)
            if ticker in sent:
                return _result(sent[ticker])
        position = next((p for p in await exchange.positions() if p.market == ticker), None)
        if position is None or position.size <= 0:
            raise NothingToCloseError(ticker)
        return await self._close(user_id, exchange, prefs, position)

    async def _close(
        self, user_id: int, exchange: Exchange, prefs: Preferences, position: Position
    ) -> CloseResult:
        order_id = await self._execution.close_position(user_id, exchange, prefs, position)
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            uow.detach(order)
        if order is None:
            raise TradingNotReadyError(texts.ORDER_NOT_IN_LEDGER)
        return _result(order)

    async def _sent_since(
        self, user_id: int, since: datetime, paper: bool, market: str | None = None
    ) -> dict[str, Order]:
        """The newest manual close per market (or of ``market``) sent since ``since``: what
        an earlier run of a resumed request already did."""
        query = select(Order).where(
            Order.user_id == user_id,
            Order.purpose == OrderPurpose.MANUAL,
            Order.paper.is_(paper),
            Order.client_id >= 0,  # not a position adopted by "Add protection" (never sent)
            Order.created_at >= since,
        )
        if market is not None:
            query = query.where(Order.market == market)
        async with UnitOfWork(self._sessionmaker) as uow:
            orders = list(await uow.session.scalars(query.order_by(Order.id)))
            uow.detach(*orders)
        return {order.market: order for order in orders}

    async def panic(self, user_id: int, *, resume_since: datetime | None = None) -> PanicReport:
        """Pause, cancel every open order, close every position reduce-only.

        Pausing comes first, so no alert opens anything while the rest runs. With
        ``resume_since`` (a retried job), a position whose manual close was sent since then is
        reported from that order, not closed again.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise TradingNotReadyError(texts.SEND_START_FIRST)
            user.paused = True
            uow.audit.record(user_id=user_id, actor="user", action="panic")
            await uow.commit()
        exchange, prefs = await self._open(user_id)
        async with UnitOfWork(self._sessionmaker) as uow:
            legs = await uow.orders.live_legs(user_id, paper=exchange.is_paper)
            protecting = {(leg.market, leg.client_id) for leg in legs}
        failures: list[str] = []
        cancelled = 0
        for order in await exchange.open_orders():
            if (order.market, order.client_id) in protecting:
                # A leg keeps protecting its position until the close below has filled;
                # then protection cancels it and tells the trader why.
                continue
            try:
                short_term = order.flags is OrderFlags.SHORT_TERM
                signed = await exchange.sign_cancel(
                    order.market,
                    order.client_id,
                    order.flags,
                    good_til_block=(
                        exchange.capabilities.short_term_good_til_block(
                            await exchange.block_height()
                        )
                        if short_term
                        else None
                    ),
                    good_til_block_time=None if short_term else order.good_til_block_time,
                )
                await exchange.broadcast(signed)
                cancelled += 1
            except PermanentExchangeError as exc:
                failures.append(f"{order.market} order {order.client_id}: {exc.reason}")
            except ExchangeError as exc:
                failures.append(f"{order.market} order {order.client_id}: {exc}")
        sent: dict[str, Order] = {}
        if resume_since is not None:
            sent = await self._sent_since(user_id, resume_since, exchange.is_paper)
        closed = [_result(order) for order in sent.values()]
        for position in await exchange.positions():
            if position.size <= 0 or position.market in sent:
                continue
            try:
                closed.append(await self._close(user_id, exchange, prefs, position))
            except PermanentExchangeError as exc:
                failures.append(f"{position.market}: {exc.reason}")
            except ExchangeError as exc:
                failures.append(f"{position.market}: {exc}")
        # Legs of positions that were already flat, or whose close filled elsewhere.
        await self._execution.protection.advance_for_subaccount(
            exchange.owner_address, exchange.subaccount_number
        )
        self._log.warning(
            "panic", user_id=user_id, cancelled=cancelled, closed=len(closed), failed=len(failures)
        )
        return PanicReport(
            cancelled=cancelled, closed=closed, failures=failures, paper=exchange.is_paper
        )


def _result(order: Order) -> CloseResult:
    """A closing order as the trader reads it."""
    return CloseResult(
        market=order.market,
        side=order.side,
        size=order.size,
        state=order.state,
        filled_size=order.filled_size,
        average_price=order.average_price,
        reason=order.error,
        paper=order.paper,
    )
