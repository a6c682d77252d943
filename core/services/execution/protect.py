"""Protecting a filled entry: its take-profit and stop-loss, and cancelling the one left
behind when the other (or a close) ends the position."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.alerts.schema import AlertOrder
from core.db.base import utcnow
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import UNFILLED_ORDER_STATES, OrderPurpose, OrderSide, OrderState
from core.exchange.errors import ExchangeError
from core.exchange.grid import GridError, worst_price
from core.exchange.orders import OrderKind, TimeInForce
from core.exchange.port import Exchange
from core.runtime.logs import get_logger
from core.services.execution.place import OrderPlacer
from core.services.execution.record import OrderRecorder
from core.services.execution.trader import Trader, flags_of
from core.services.planning import OrderPlan, protective_prices
from core.texts import trade as texts

#: Take-profit / stop-loss orders rest this long.
PROTECTION_LIFETIME = timedelta(days=28)
#: Worst price of a triggered protective order, as a multiple of the trader's slippage.
PROTECTION_SLIPPAGE_FACTOR = 3
NOTIFY_PROTECTION = "protection_placed"


class Protector:
    """Places and cancels the protective orders of a position.

    Args:
        sessionmaker: Database sessions.
        placer: Commits and sends each protective order like any other.
        recorder: Records a cancelled sibling.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        placer: OrderPlacer,
        recorder: OrderRecorder,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._placer = placer
        self._recorder = recorder
        self._log = get_logger(__name__)

    async def protect(self, order_id: int, *, exchange: Exchange) -> None:
        """Place the take-profit / stop-loss an entry's alert asked for, once it has filled.

        Each protective order is its own row (one per alert and purpose), placed with the same
        commit-then-broadcast protocol, so a re-run never places a second one.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            if (
                order is None
                or order.purpose is not OrderPurpose.ENTRY
                or order.alert_id is None
                or order.filled_size <= 0
                or order.average_price is None
            ):
                return
            alert = await uow.alerts.get(order.alert_id)
            user = await uow.users.get(order.user_id)
            if alert is None or user is None:
                return
            existing = {child.purpose for child in await uow.orders.children(order.id)}
            prefs = Preferences.from_json(user.settings)
            uow.detach(order, alert, user)
            trader = Trader.of_user(user, prefs)
        request = AlertOrder.from_fields(alert.fields)
        if request.trail_pct is not None:
            async with UnitOfWork(self._sessionmaker) as uow:
                await uow.notifications.enqueue(
                    chat_id=trader.chat_id,
                    user_id=trader.user_id,
                    kind=NOTIFY_PROTECTION,
                    text=texts.no_trailing_stop_text(order.market),
                    dedupe_key=f"order:{order.id}:no-trailing",
                )
                await uow.commit()
        if not any((request.tp_price, request.tp_pct, request.sl_price, request.sl_pct)):
            return
        try:
            market = await exchange.market(order.market)
            take, stop = protective_prices(request, order.side, order.average_price, market)
        except (KeyError, GridError, ExchangeError) as exc:
            self._log.warning("protection_not_priced", order_id=order_id, error=str(exc))
            return
        exit_side = OrderSide.SELL if order.side is OrderSide.BUY else OrderSide.BUY
        slippage = min(prefs.slippage_pct * PROTECTION_SLIPPAGE_FACTOR / 100, Decimal("0.5"))
        placed: dict[OrderPurpose, Decimal] = {}
        for purpose, kind, trigger in (
            (OrderPurpose.TAKE_PROFIT, OrderKind.TAKE_PROFIT, take),
            (OrderPurpose.STOP_LOSS, OrderKind.STOP, stop),
        ):
            if trigger is None or purpose in existing:
                continue
            plan = OrderPlan(
                market=order.market,
                side=exit_side,
                size=order.filled_size,
                kind=kind,
                price=worst_price(exit_side, trigger, slippage, market),
                reduce_only=True,
                time_in_force=TimeInForce.IOC,
                purpose=purpose,
                reference_price=trigger,
                notional=order.filled_size * trigger,
                position_before=Decimal(0),
                entry_before=None,
                good_til_block_time=utcnow() + PROTECTION_LIFETIME,
            )
            try:
                child_id, signed = await self._placer.commit(
                    exchange,
                    trader,
                    plan,
                    alert_id=order.alert_id,
                    purpose=purpose,
                    height=0,
                    kind=kind,
                    trigger_price=trigger,
                    parent_order_id=order.id,
                )
            except (GridError, ExchangeError) as exc:
                self._log.warning("protection_not_signed", order_id=order_id, error=str(exc))
                continue
            await self._placer.broadcast(exchange, child_id, signed)
            placed[purpose] = trigger
        if placed:
            async with UnitOfWork(self._sessionmaker) as uow:
                await uow.notifications.enqueue(
                    chat_id=trader.chat_id,
                    user_id=trader.user_id,
                    kind=NOTIFY_PROTECTION,
                    text=texts.protection_text(
                        order.market,
                        placed.get(OrderPurpose.TAKE_PROFIT),
                        placed.get(OrderPurpose.STOP_LOSS),
                        paper=order.paper,
                    ),
                    dedupe_key=f"order:{order.id}:protection",
                )
                await uow.commit()

    async def cancel_siblings(self, order_id: int, *, exchange: Exchange) -> int:
        """Cancel the other protective orders of a position that a fill closed (no native OCO
        on dYdX: an untriggered stop outlives the position it protected).

        Returns:
            How many cancels were accepted.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                return 0
            if order.purpose in (OrderPurpose.CLOSE, OrderPurpose.MANUAL):
                delta = order.filled_size if order.side is OrderSide.BUY else -order.filled_size
                if (order.position_before or Decimal(0)) + delta != 0:
                    return 0  # a partial close keeps its protection
            live = [
                o
                for o in await uow.orders.live_conditionals(order.user_id, order.market)
                if o.id != order.id and o.paper == order.paper
            ]
            uow.detach(*live)
        cancelled = 0
        for sibling in live:
            try:
                signed = await exchange.sign_cancel(
                    sibling.market,
                    sibling.client_id,
                    flags_of(sibling),
                    good_til_block_time=sibling.good_til_block_time,
                )
                await exchange.broadcast(signed)
            except ExchangeError as exc:
                self._log.warning("sibling_cancel_failed", order_id=sibling.id, error=str(exc))
                continue
            # A sibling something filled meanwhile is left to settling, which records its fills.
            await self._recorder.transition(
                sibling.id,
                OrderState.CANCELED,
                among=UNFILLED_ORDER_STATES,
                closed_at=utcnow(),
                error=texts.LEG_CANCELLED_POSITION_CLOSED,
            )
            cancelled += 1
        return cancelled
