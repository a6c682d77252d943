"""An order's final outcome recorded in two round trips (see
:mod:`core.db.repositories.settlement`): its fills with their realized P&L, its totals and
state, the position after it, the trader's message and its alert's end, together or not at
all. The one case left to the unit of work: a losing fill of a trader with a daily loss
limit, where the pause depends on the day's sum including these fills."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.db.base import utcnow
from core.db.repositories.settlement import (
    FinalRecord,
    NewFill,
    PositionAfter,
    SettlementRepository,
)
from core.domain.preferences import Preferences
from core.domain.states import OrderPurpose, OrderSide, OrderState, sources_of
from core.exchange.port import Fill, Position
from core.runtime.logs import get_logger
from core.services.execution.notice import Notice, final_notice, finishes_alert
from core.services.execution.pnl import realize_all


class UnsuitedError(Exception):
    """This outcome needs the unit of work (the daily loss limit may pause the trader)."""


@dataclass(frozen=True, slots=True)
class _FinalView:
    """The order as it is once final (what the trader's message is made of)."""

    id: int
    state: OrderState
    purpose: OrderPurpose
    market: str
    side: OrderSide
    size: Decimal
    filled_size: Decimal
    average_price: Decimal | None
    fee: Decimal
    reference_price: Decimal | None
    realized_pnl: Decimal
    position_before: Decimal | None
    error: str | None
    paper: bool
    bracket_id: int | None


class FinalRecorder:
    """Records final outcomes through the settlement repository.

    Args:
        settlement: The two-round-trip repository.
    """

    def __init__(self, settlement: SettlementRepository) -> None:
        self._settlement = settlement
        self._log = get_logger(__name__)

    async def record(
        self, order_id: int, fills: list[Fill], positions: list[Position] | None
    ) -> tuple[OrderState, Decimal] | None:
        """Make the order final with ``fills`` (all of its fills) and ``positions``.

        Returns:
            The state and filled size recorded; None if the order is unknown or another
            recorder made it final first.

        Raises:
            UnsuitedError: The unit of work must record this one (nothing was written).
        """
        order = await self._settlement.order_to_settle(order_id)
        if order is None or OrderState(order.state).is_final:
            return None
        realized = realize_all(order.position_before, order.entry_before, fills)
        new_fills = [
            NewFill(
                exchange_fill_id=fill.fill_id[:64],
                market=fill.market,
                side=fill.side.value,
                size=fill.size,
                price=fill.price,
                fee=fill.fee,
                liquidity=fill.liquidity[:8],
                realized_pnl=pnl,
                filled_at=fill.created_at,
            )
            for fill, pnl in realized.fills
        ]
        size, fee, pnl_total = realized.size, realized.fee, realized.pnl
        prefs = Preferences.from_json(order.settings)
        if pnl_total < 0 and prefs.daily_loss_limit_usd is not None and not order.paused:
            raise UnsuitedError(order_id)
        done = OrderState.FILLED if size >= order.size else OrderState.CANCELED
        view = _FinalView(
            id=order.id,
            state=done,
            purpose=OrderPurpose(order.purpose),
            market=order.market,
            side=OrderSide(order.side),
            size=order.size,
            filled_size=size,
            average_price=realized.average_price,
            fee=fee,
            reference_price=order.reference_price,
            realized_pnl=pnl_total,
            position_before=order.position_before,
            error=order.error,
            paper=order.paper,
            bracket_id=order.bracket_id,
        )
        alert_id = order.alert_id if order.alert_found else None
        notice = final_notice(
            view,
            alert_id=alert_id,
            strategy=order.strategy,
            positions=positions,
            has_notify_chat=order.has_notify_chat,
        )
        now = utcnow()
        moved = await self._settlement.record_final(
            FinalRecord(
                order_id=order.id,
                user_id=order.user_id,
                paper=order.paper,
                state=done.value,
                from_states=sorted(state.value for state in sources_of(done)),
                filled_size=size,
                fee=fee,
                realized_pnl=pnl_total,
                average_price=view.average_price,
                filled_at=max(f.created_at for f in fills) if size else None,
                now=now,
                fills=new_fills,
                market=order.market,
                position=_position_after(positions, order.market),
                message=(
                    (order.chat_id, notice.kind, notice.text, Notice.dedupe_key(order.id))
                    if notice.speaks
                    else None
                ),
                alert=(
                    (
                        alert_id,
                        notice.alert_state.value,
                        sorted(state.value for state in sources_of(notice.alert_state)),
                        order.error[:500] if order.error else None,
                    )
                    if alert_id is not None and finishes_alert(view)
                    else None
                ),
            )
        )
        if not moved:
            return None
        self._log.info(
            "order_settled",
            order_id=order_id,
            filled=str(size),
            average_price=str(view.average_price),
        )
        return done, size


def _position_after(positions: list[Position] | None, market: str) -> PositionAfter | None:
    """The market's position as reported (flat when absent); None when none were read."""
    if positions is None:
        return None
    current = next((p for p in positions if p.market == market), None)
    if current is None:
        return PositionAfter(side=None, size=Decimal(0), entry_price=None)
    return PositionAfter(
        side=current.side.value, size=current.size, entry_price=current.entry_price
    )
