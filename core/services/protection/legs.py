"""Placing and cancelling the legs of a bracket, with the execution protocol
(commit-then-broadcast, one row per bracket, purpose and generation)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Bracket, Order
from core.db.repositories.execution import DuplicateLegError
from core.db.uow import UnitOfWork
from core.domain.states import UNFILLED_ORDER_STATES, OrderPurpose, OrderSide, OrderState
from core.exchange.errors import ExchangeError, PermanentExchangeError
from core.exchange.grid import GridError, worst_price
from core.exchange.orders import OrderKind, TimeInForce
from core.exchange.port import Exchange, MarketInfo
from core.runtime.logs import get_logger
from core.services.execution.place import OrderPlacer
from core.services.execution.record import OrderRecorder
from core.services.execution.trader import Trader, flags_of
from core.services.planning import OrderPlan
from core.services.protection.renewal import LegLifetime

#: Worst price of a triggered protective order, as a multiple of the trader's slippage.
PROTECTION_SLIPPAGE_FACTOR = 3
#: Never accept a triggered leg filling worse than this far from its trigger.
MAX_PROTECTION_SLIPPAGE = Decimal("0.5")

_KINDS = {OrderPurpose.TAKE_PROFIT: OrderKind.TAKE_PROFIT, OrderPurpose.STOP_LOSS: OrderKind.STOP}
#: The stop-loss goes first: it is what the invariant needs, and when the chain refuses it
#: nothing else was placed (so nothing must be cancelled in the block it landed in).
LEG_ORDER = (OrderPurpose.STOP_LOSS, OrderPurpose.TAKE_PROFIT)


class LegDesk:
    """Commits, broadcasts and cancels legs.

    Args:
        sessionmaker: Database sessions.
        placer: Commits and broadcasts each leg like any other order.
        recorder: Records a cancelled leg.
        lifetime: How long legs rest, and when they are renewed.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        placer: OrderPlacer,
        recorder: OrderRecorder,
        lifetime: LegLifetime | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._placer = placer
        self._recorder = recorder
        self.lifetime = lifetime or LegLifetime()
        self._log = get_logger(__name__)

    async def place(
        self,
        exchange: Exchange,
        trader: Trader,
        bracket: Bracket,
        entry: Order,
        market: MarketInfo,
        triggers: dict[OrderPurpose, Decimal],
        size: Decimal,
        *,
        generation: int | None = None,
    ) -> bool:
        """Commit then broadcast one leg per purpose in ``triggers`` for the bracket's current
        generation (already committed on the bracket), the stop-loss first; a refused
        stop-loss stops there. ``generation`` overrides the bracket's (a trailing move
        commits its leg above it, and the bracket follows once the node accepted).

        Returns:
            False when another step had already committed this generation's legs.

        Raises:
            GridError: The leg cannot be put on the market's grid.
            ExchangeError: Signing failed.
        """
        exit_side = OrderSide.SELL if entry.side is OrderSide.BUY else OrderSide.BUY
        slippage = min(
            trader.prefs.slippage_pct * PROTECTION_SLIPPAGE_FACTOR / 100, MAX_PROTECTION_SLIPPAGE
        )
        for purpose in [p for p in LEG_ORDER if p in triggers]:
            trigger = triggers[purpose]
            kind = _KINDS[purpose]
            plan = OrderPlan(
                market=bracket.market,
                side=exit_side,
                size=size,
                kind=kind,
                price=worst_price(exit_side, trigger, slippage, market),
                reduce_only=True,
                time_in_force=TimeInForce.IOC,
                purpose=purpose,
                reference_price=trigger,
                notional=size * trigger,
                # What this leg closes: its bracket's share, entered at its entry's price, so
                # a hit reports the P&L of the trade it ends (and a stop-loss's loss counts
                # towards the daily loss limit).
                position_before=size if entry.side is OrderSide.BUY else -size,
                entry_before=entry.average_price,
                good_til_block_time=self.lifetime.expires_at(utcnow()),
            )
            try:
                leg_id, signed, _ = await self._placer.commit(
                    exchange,
                    trader,
                    plan,
                    alert_id=entry.alert_id,
                    purpose=purpose,
                    height=0,
                    kind=kind,
                    trigger_price=trigger,
                    parent_order_id=entry.id,
                    leg_of=(bracket.id, bracket.generation if generation is None else generation),
                )
            except DuplicateLegError:
                self._log.info("leg_already_committed", bracket_id=bracket.id, purpose=purpose)
                return False
            await self._placer.broadcast(exchange, leg_id, signed)
            if purpose is OrderPurpose.STOP_LOSS and await self._refused(leg_id):
                break
        return True

    async def _refused(self, leg_id: int) -> bool:
        async with UnitOfWork(self._sessionmaker) as uow:
            leg = await uow.orders.get(leg_id)
            return leg is not None and leg.state is OrderState.REJECTED

    async def cancel(self, exchange: Exchange, leg: Order, reason: str) -> bool:
        """Cancel a resting leg and record it CANCELED (a leg something filled meanwhile is
        left to settling, which records its fills).

        Returns:
            Whether the node accepted the cancel.
        """
        try:
            signed = await exchange.sign_cancel(
                leg.market,
                leg.client_id,
                flags_of(leg),
                good_til_block_time=leg.good_til_block_time,
            )
            await exchange.broadcast(signed)
        except PermanentExchangeError as exc:
            # Usually the order is gone already (filled, expired, cancelled in the web app):
            # settling finds out which.
            self._log.warning("leg_cancel_refused", order_id=leg.id, reason=exc.reason)
            return False
        except (ExchangeError, GridError) as exc:
            self._log.warning("leg_cancel_failed", order_id=leg.id, error=str(exc))
            return False
        await self._recorder.transition(
            leg.id,
            OrderState.CANCELED,
            among=UNFILLED_ORDER_STATES,
            closed_at=utcnow(),
            error=reason,
        )
        return True
