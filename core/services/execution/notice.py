"""What an order that became final tells its trader, and what becomes of its alert: one
function for both ways of recording it (the unit of work and the two-round-trip record)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.domain.states import AlertState, OrderPurpose, OrderSide, OrderState
from core.exchange.port import Position
from core.services.execution.alerts import NOTIFY_FAILED
from core.services.execution.pnl import reduced
from core.texts import trade as texts

NOTIFY_FILLED = "trade_filled"
NOTIFY_REJECTED = "trade_rejected"


class FinalOrder(Protocol):
    """What the notice reads of an order made final (a ledger row or its plain view)."""

    @property
    def id(self) -> int: ...
    @property
    def state(self) -> OrderState: ...
    @property
    def purpose(self) -> OrderPurpose: ...
    @property
    def market(self) -> str: ...
    @property
    def side(self) -> OrderSide: ...
    @property
    def size(self) -> Decimal: ...
    @property
    def filled_size(self) -> Decimal: ...
    @property
    def average_price(self) -> Decimal | None: ...
    @property
    def fee(self) -> Decimal: ...
    @property
    def reference_price(self) -> Decimal | None: ...
    @property
    def realized_pnl(self) -> Decimal: ...
    @property
    def position_before(self) -> Decimal | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def paper(self) -> bool: ...
    @property
    def bracket_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Notice:
    """The trader's message (None when the order is not theirs to hear of) and the alert's
    final state."""

    kind: str
    text: str
    speaks: bool
    alert_state: AlertState

    @staticmethod
    def dedupe_key(order_id: int) -> str:
        """One final message per order, whoever records it."""
        return f"order:{order_id}:final"


def final_notice(
    order: FinalOrder,
    *,
    alert_id: int | None,
    strategy: str | None,
    positions: list[Position] | None,
    has_notify_chat: bool,
) -> Notice:
    """The message and alert state for an order just made final.

    Args:
        order: The order, with its final state and totals.
        alert_id: Its alert, if it has one of the same trader.
        strategy: The alert's strategy label.
        positions: The subaccount's positions after the order (for the position line).
        has_notify_chat: Whether the trader set a channel for messages (a manual order is
            answered in the chat that asked; a channel still hears of it).
    """
    if order.state is OrderState.REJECTED:
        kind = NOTIFY_REJECTED
        text = texts.rejected_text(
            alert_id, strategy, order.market, order.error or "refused", paper=order.paper
        )
        alert_state = AlertState.FAILED
    elif order.filled_size > 0:
        current = next((p for p in positions or [] if p.market == order.market), None)
        kind = NOTIFY_FILLED
        text = texts.filled_text(
            texts.FillSummary(
                alert_id=alert_id,
                strategy=strategy,
                market=order.market,
                side=order.side,
                size=order.size,
                filled_size=order.filled_size,
                average_price=order.average_price or Decimal(0),
                fee=order.fee,
                reference_price=order.reference_price,
                realized_pnl=order.realized_pnl if reduced(order) else None,
                position_side=current.side if current else None,
                position_size=current.size if current else Decimal(0),
                paper=order.paper,
                purpose=order.purpose.value,
            )
        )
        alert_state = AlertState.EXECUTED
    else:
        kind = NOTIFY_FAILED
        reason = order.error or texts.NOTHING_FILLED
        text = texts.unfilled_text(alert_id, strategy, order.market, reason, paper=order.paper)
        alert_state = AlertState.FAILED
    # A leg that ends unfilled (cancelled, refused, expired) is the protection service's to
    # explain: it says what became of the position's protection.
    speaks = (order.bracket_id is None or order.filled_size > 0) and (
        order.purpose is not OrderPurpose.MANUAL or has_notify_chat
    )
    return Notice(kind=kind, text=text, speaks=speaks, alert_state=alert_state)


def finishes_alert(order: FinalOrder) -> bool:
    """Whether the order's outcome is its alert's (entries and closes; never a leg's)."""
    return order.purpose in (OrderPurpose.ENTRY, OrderPurpose.CLOSE)
