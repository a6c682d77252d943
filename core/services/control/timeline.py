"""What happened to one alert on its way to the exchange, step by step (/why). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from core.db.models import Alert, Order
from core.domain.states import AlertState, OrderPurpose, OrderState


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an alert's way to the exchange.

    Attributes:
        name: ``received``, ``queued``, ``picked_up``, ``signed``, ``broadcast``,
            ``accepted``, ``filled`` or ``notified``.
        at: When it happened; ``None`` when it did not (yet).
        since_previous: Time since the previous step that happened.
        since_received: Time since the alert was received.
        order: Which order the step belongs to when the alert placed several.
    """

    name: str
    at: datetime | None
    since_previous: timedelta | None
    since_received: timedelta | None
    order: OrderPurpose | None = None


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order placed for the alert, as /why describes it."""

    purpose: OrderPurpose
    market: str
    side: str
    size: Decimal
    state: OrderState
    filled_size: Decimal
    average_price: Decimal | None
    paper: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class Timeline:
    """What happened to one alert, step by step.

    Attributes:
        alert_id: Our alert id.
        external_id: TradingView's ``alert_id``, if the alert carried one.
        market: The market asked for.
        action: ``buy``, ``sell`` or ``close``.
        state: The alert's state now.
        reason: Why it was refused, skipped or failed, if it was.
        steps: The steps in order, those that did not happen included (``at`` is None).
        orders: The orders placed for it.
        timezone: The trader's timezone preference, to show the times in.
    """

    alert_id: int
    external_id: str | None
    market: str | None
    action: str | None
    state: AlertState
    reason: str | None
    steps: list[Step]
    orders: list[OrderSummary]
    timezone: str = "UTC"


def parse_alert_reference(text: str) -> tuple[int | None, str]:
    """Split what /why was given into our id (when numeric) and the raw reference.

    ``#12`` and ``12`` are our id 12 (or, failing that, a TradingView id ``12``).
    """
    reference = text.strip()
    digits = reference.removeprefix("#")
    if digits.isdigit() and len(digits) <= 18:
        return int(digits), reference
    return None, reference


def _latency(at: datetime | None, reference: datetime | None) -> timedelta | None:
    if at is None or reference is None:
        return None
    return at - reference


def _steps(alert: Alert, orders: Sequence[Order], notified: datetime | None) -> list[Step]:
    received = alert.received_at
    raw: list[tuple[str, datetime | None, OrderPurpose | None]] = [
        ("received", received, None),
        ("queued", alert.enqueued_at, None),
        ("picked_up", alert.started_at, None),
    ]
    several = len(orders) > 1
    for order in orders:
        purpose = order.purpose if several else None
        raw += [
            ("signed", order.signed_at, purpose),
            ("broadcast", order.submitted_at, purpose),
            ("accepted", order.accepted_at, purpose),
            ("filled", order.filled_at, purpose),
        ]
    if not orders:
        raw += [(name, None, None) for name in ("signed", "broadcast", "accepted", "filled")]
    raw.append(("notified", notified, None))
    steps = []
    previous: datetime | None = None
    for name, at, purpose in raw:
        steps.append(
            Step(
                name=name,
                at=at,
                since_previous=_latency(at, previous) if name != "received" else None,
                since_received=_latency(at, received) if name != "received" else None,
                order=purpose,
            )
        )
        if at is not None:
            previous = at
    return steps


def notice_key_patterns(alert_id: int, order_ids: Sequence[int]) -> list[str]:
    """``LIKE`` patterns of the outbox dedupe keys that report on an alert or its orders.

    The execution worker keys its notices ``<kind>:alert:<id>`` or ``<kind>:order:<id>``
    (optionally with a suffix after another ``:``).
    """
    patterns = [f"%alert:{alert_id}", f"%alert:{alert_id}:%"]
    for order_id in order_ids:
        patterns += [f"%order:{order_id}", f"%order:{order_id}:%"]
    return patterns


def build_timeline(
    alert: Alert, orders: Sequence[Order], notified: datetime | None, timezone: str
) -> Timeline:
    """The timeline of ``alert``.

    Args:
        alert: The alert.
        orders: The orders placed for it.
        notified: When the first notice about it was sent, if one was.
        timezone: The trader's timezone preference.
    """
    return Timeline(
        alert_id=alert.id,
        external_id=alert.external_id,
        market=alert.market,
        action=alert.action,
        state=alert.state,
        reason=alert.reason,
        steps=_steps(alert, orders, notified),
        orders=[
            OrderSummary(
                purpose=order.purpose,
                market=order.market,
                side=order.side.value,
                size=order.size,
                state=order.state,
                filled_size=order.filled_size,
                average_price=order.average_price,
                paper=order.paper,
                error=order.error,
            )
            for order in orders
        ],
        timezone=timezone,
    )
