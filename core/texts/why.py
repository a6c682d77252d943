"""/why ALERT_ID: an alert's timeline with the latency of every step."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from core.domain.states import AlertState, OrderState
from core.texts import fmt

if TYPE_CHECKING:  # the view types only: texts do not import the services at run time
    from core.services.control.timeline import OrderSummary, Step, Timeline

STEP_NAMES = {
    "received": "received",
    "queued": "queued",
    "picked_up": "picked up",
    "signed": "signed",
    "broadcast": "broadcast",
    "accepted": "accepted",
    "filled": "filled",
    "notified": "notified",
}

_STATES = {
    AlertState.ACCEPTED: "waiting for a worker",
    AlertState.REJECTED: "refused at intake",
    AlertState.PROCESSING: "executing",
    AlertState.EXECUTED: "executed",
    AlertState.SKIPPED: "skipped",
    AlertState.EXPIRED: "expired (too old when its turn came)",
    AlertState.FAILED: "failed",
}


def usage() -> str:
    """/why without an id."""
    return (
        "Send /why followed by an alert's number as /webhook lists it (e.g. /why 12), or the "
        "alert_id your TradingView alert sent."
    )


def not_found(reference: str) -> str:
    """No alert of this user matches."""
    return (
        f"I found no alert of yours with id {escape(reference[:64])}. /webhook lists your "
        "latest alerts with their numbers."
    )


def _step_line(step: Step, zone: ZoneInfo, width: int) -> str:
    name = STEP_NAMES.get(step.name, step.name)
    if step.order is not None:
        name = f"{name} ({step.order.value.lower()})"
    if step.at is None:
        return f"{name:<{width}}  —"
    line = f"{name:<{width}}  {fmt.clock(step.at, zone)}"
    if step.since_previous is not None and step.since_received is not None:
        line += f"  +{fmt.duration(step.since_previous):<9} {fmt.duration(step.since_received)}"
    return line


def _order_line(order: OrderSummary) -> str:
    paper = " (paper)" if order.paper else ""
    head = (
        f"{order.purpose.value.lower()}: {order.side} {fmt.size(order.size)} "
        f"{escape(order.market)}{paper} — {order.state.value.lower().replace('_', ' ')}"
    )
    if order.filled_size > 0 and order.average_price is not None:
        head += f", {fmt.size(order.filled_size)} @ {fmt.price(order.average_price)}"
    if order.error and order.state in {OrderState.REJECTED, OrderState.UNKNOWN}:
        head += f" ({escape(order.error)})"
    return head


def timeline(view: Timeline) -> str:
    """The timeline: a table of steps, then the outcome, in the trader's timezone."""
    zone = ZoneInfo(view.timezone)
    received = view.steps[0].at
    title = f"🔎 <b>Alert #{view.alert_id}</b>"
    if view.external_id:
        title += f" (alert_id <code>{escape(view.external_id)}</code>)"
    what = f"{escape(view.market or '?')} {escape(view.action or '?')}"
    state = _STATES.get(view.state, view.state.value.lower())
    lines = [title, f"{what} — {state}"]
    if view.reason:
        lines.append(f"Reason: {escape(view.reason)}")
    if received is not None:
        lines.append(f"Received {fmt.local_time(received, zone)}")
    names = [
        STEP_NAMES.get(s.name, s.name) + (f" ({s.order.value.lower()})" if s.order else "")
        for s in view.steps
    ]
    width = max(len(name) for name in names)
    table = [f"{'step':<{width}}  {'time':<12}  {'+previous':<10} total"]
    table += [_step_line(step, zone, width) for step in view.steps]
    lines.append(f"<pre>{escape(chr(10).join(table))}</pre>")
    if view.orders:
        lines.append("<b>Orders</b>")
        lines += [_order_line(order) for order in view.orders]
    lines.append(f"Times in {escape(zone.key)} (/settings to change).")
    return "\n".join(lines)
