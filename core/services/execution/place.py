"""Placing an order: commit it signed as SUBMITTING (step 1), then broadcast it (step 2)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from core.db.base import utcnow
from core.db.repositories.execution import ExecutionRepository, NewBracket, NewOrder
from core.domain.preferences import Preferences
from core.domain.states import OrderPurpose, OrderSide, OrderState, PositionSide
from core.exchange.errors import (
    PermanentExchangeError,
    RetryableExchangeError,
    UnknownOutcomeError,
)
from core.exchange.grid import worst_price
from core.exchange.orders import OrderKind, OrderRequest, SignedTx, TimeInForce
from core.exchange.port import Exchange, MarketInfo, Position
from core.runtime.logs import get_logger
from core.services.execution.record import OrderRecorder
from core.services.execution.trader import Trader
from core.services.planning import OrderPlan


def close_plan(position: Position, market: MarketInfo, prefs: Preferences) -> OrderPlan:
    """A reduce-only market order that closes ``position`` now (``/close``, ``/panic``)."""
    side = OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY
    held = position.size if position.side is PositionSide.LONG else -position.size
    return OrderPlan(
        market=position.market,
        side=side,
        size=position.size,
        kind=OrderKind.MARKET,
        price=worst_price(side, market.oracle_price, prefs.slippage_pct / 100, market),
        reduce_only=True,
        time_in_force=TimeInForce.IOC,
        purpose=OrderPurpose.MANUAL,
        reference_price=market.oracle_price,
        notional=position.size * market.oracle_price,
        position_before=held,
        entry_before=position.entry_price,
    )


class Committed(NamedTuple):
    """An order committed SUBMITTING, ready to broadcast."""

    order_id: int
    signed: SignedTx
    client_id: int


class OrderPlacer:
    """Commits signed orders and sends their bytes.

    Args:
        store: The hot path's repository (client ids, order inserts, acceptance marks).
        recorder: Records a refusal or an unknown outcome.
    """

    def __init__(self, store: ExecutionRepository, recorder: OrderRecorder) -> None:
        self._store = store
        self._recorder = recorder
        self._log = get_logger(__name__)

    async def commit(
        self,
        exchange: Exchange,
        trader: Trader,
        plan: OrderPlan,
        *,
        alert_id: int | None,
        purpose: OrderPurpose,
        height: int,
        kind: OrderKind | None = None,
        trigger_price: Decimal | None = None,
        parent_order_id: int | None = None,
        picked_up: datetime | None = None,
        bracket: NewBracket | None = None,
        leg_of: tuple[int, int] | None = None,
        reserved_client_id: tuple[str, int, int] | None = None,
    ) -> Committed:
        """Allocate a client id, sign, and commit the order as SUBMITTING (step 1).

        With ``picked_up``, the alert moves to PROCESSING in the same transaction; with
        ``bracket``, the entry's requested protection is committed with it.

        Args:
            leg_of: ``(bracket id, generation)`` of a take-profit / stop-loss leg.
            reserved_client_id: ``(owner, subaccount, client id)`` allocated with the alert's
                load; used when it is this exchange's subaccount (never for paper trading).

        Returns:
            The order's id, its signed transaction and its client id.
        """
        kind = kind or plan.kind
        short_term = plan.good_til_block_time is None and kind in (
            OrderKind.MARKET,
            OrderKind.LIMIT,
        )
        owner, number = exchange.owner_address, exchange.subaccount_number
        if reserved_client_id is not None and reserved_client_id[:2] == (owner, number):
            client_id = reserved_client_id[2]
        else:
            client_id = await self._store.allocate_client_id(owner, number)
        request = OrderRequest(
            market=plan.market,
            side=plan.side,
            size=plan.size,
            kind=kind,
            price=plan.price,
            client_id=client_id,
            trigger_price=trigger_price,
            reduce_only=plan.reduce_only,
            time_in_force=plan.time_in_force,
            good_til_block=(
                exchange.capabilities.short_term_good_til_block(height) if short_term else None
            ),
            good_til_block_time=None if short_term else plan.good_til_block_time,
        )
        signed = await exchange.sign_order(request)
        order_id = await self._store.insert_order(
            NewOrder(
                user_id=trader.user_id,
                alert_id=alert_id,
                parent_order_id=parent_order_id,
                purpose=purpose.value,
                paper=exchange.is_paper,
                market=plan.market,
                owner_address=exchange.owner_address,
                subaccount_number=exchange.subaccount_number,
                client_id=client_id,
                order_flags=int(request.flags),
                side=plan.side.value,
                order_type=kind.value,
                size=plan.size,
                price=plan.price,
                trigger_price=trigger_price,
                reduce_only=plan.reduce_only,
                time_in_force=plan.time_in_force.value,
                good_til_block=request.good_til_block,
                good_til_block_time=request.good_til_block_time,
                tx_bytes=signed.tx_bytes,
                tx_hash=signed.tx_hash,
                reference_price=plan.reference_price,
                position_before=plan.position_before,
                entry_before=plan.entry_before,
                signed_at=utcnow(),
                bracket_id=leg_of[0] if leg_of else None,
                generation=leg_of[1] if leg_of else None,
            ),
            picked_up=picked_up if alert_id is not None else None,
            bracket=bracket,
        )
        if picked_up is None:
            # An alert's order is logged once, after its broadcast (``alert_order_sent``):
            # nothing is rendered between an alert's commit and its broadcast.
            self._log.info(
                "order_committed",
                order_id=order_id,
                alert_id=alert_id,
                market=plan.market,
                side=plan.side.value,
                size=str(plan.size),
                client_id=client_id,
                paper=exchange.is_paper,
            )
        return Committed(order_id, signed, client_id)

    async def broadcast(self, exchange: Exchange, order_id: int, signed: SignedTx) -> None:
        """Send the committed bytes and record what the node said (step 2)."""
        sent_at = utcnow()
        try:
            result = await exchange.broadcast(signed)
        except PermanentExchangeError as exc:
            await self._recorder.reject(order_id, exc, sent_at)
            return
        except UnknownOutcomeError:
            await self._recorder.transition(order_id, OrderState.UNKNOWN, submitted_at=sent_at)
            self._log.warning("order_outcome_unknown", order_id=order_id)
            return
        except RetryableExchangeError as exc:
            # Nothing is known to have landed; settling re-broadcasts the same bytes.
            self._log.warning("order_broadcast_retry", order_id=order_id, reason=str(exc))
            return
        # One statement on the hot path's pool: the next alert of a burst waits for this CPU.
        await self._store.mark_submitted(
            order_id, submitted_at=sent_at, accepted_at=utcnow(), tx_hash=result.tx_hash
        )
