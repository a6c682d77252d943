"""/positions, /orders, /close and /panic."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from core.domain.states import OrderPurpose, OrderSide, OrderState
from core.texts import fmt

if TYPE_CHECKING:  # the view types only: texts import neither services nor venues at run time
    from core.exchange.port import Account, OpenOrder, Position
    from core.services.trading import BracketView, CloseResult, LegView, PanicReport

PANIC_CONFIRM_BUTTON = "🛑 Yes, close everything now"
PANIC_CANCEL_BUTTON = "No, keep everything"
MOVE_STOP_BUTTON = "Move stop-loss"
REMOVE_TP_BUTTON = "Remove take-profit"
ADD_PROTECTION_BUTTON = "Add protection"
REMOVE_TP_CONFIRM_BUTTON = "Yes, remove the take-profit"
REMOVE_TP_CANCEL_BUTTON = "No, keep it"

# The values of ``OrderKind.STOP`` and ``OrderKind.TAKE_PROFIT`` (a StrEnum, not imported).
_CONDITIONAL_KINDS = frozenset({"STOP", "TAKE_PROFIT"})
_PENDING = {OrderState.RECEIVED, OrderState.SUBMITTING, OrderState.SUBMITTED, OrderState.UNKNOWN}


def _venue(paper: bool) -> str:
    return "📝 PAPER" if paper else "💸 LIVE"


def _side(side: OrderSide) -> str:
    return "bought" if side is OrderSide.BUY else "sold"


_LEG_NAMES = {OrderPurpose.TAKE_PROFIT: "take-profit", OrderPurpose.STOP_LOSS: "stop-loss"}
_PLACING = {OrderState.RECEIVED, OrderState.SUBMITTING, OrderState.UNKNOWN}


def _leg_line(leg: LegView) -> str:
    if leg.state is OrderState.REJECTED:
        state = f"failed: {escape(leg.error or 'refused by the chain')}"
    elif leg.state in _PLACING:
        state = "placing"
    elif leg.state is OrderState.PARTIALLY_FILLED:
        state = "partly filled"
    else:
        state = "resting"
    trigger = fmt.price(leg.trigger) if leg.trigger is not None else "?"
    return f"  • {_LEG_NAMES[leg.purpose]} {trigger} · {fmt.number(leg.size)} · {state}"


def _protection_lines(brackets: list[BracketView]) -> list[str]:
    """A position's legs, oldest entry first, and plain words when no stop-loss rests."""
    lines: list[str] = []
    for bracket in brackets:
        lines += [_leg_line(leg) for leg in sorted(bracket.legs, key=lambda leg: leg.purpose)]
        if bracket.trail_pct is not None:
            lines.append(f"  • trailing {fmt.number(bracket.trail_pct)} % (not active yet)")
    stops = [
        leg
        for bracket in brackets
        for leg in bracket.legs
        if leg.purpose is OrderPurpose.STOP_LOSS and leg.state is not OrderState.REJECTED
    ]
    if not stops:
        lines.append("  ⚠️ unprotected: no stop-loss is resting on this position")
    return lines


def positions(
    items: list[Position],
    account: Account,
    *,
    paper: bool,
    protection: dict[str, list[BracketView]] | None = None,
) -> str:
    """Open positions with their take-profit / stop-loss legs, and the account's collateral."""
    lines = [f"📊 <b>Positions</b> ({_venue(paper)})"]
    if not items:
        lines.append("No open positions.")
    for position in sorted(items, key=lambda p: p.market):
        lines.append(
            f"<b>{escape(position.market)}</b> {position.side.value} "
            f"{fmt.number(position.size)} @ {fmt.price(position.entry_price)} · "
            f"PnL {fmt.usd(position.unrealized_pnl, signed=True)}"
        )
        if protection is not None:
            lines += _protection_lines(protection.get(position.market, []))
    lines.append("")
    lines.append(
        f"Equity {fmt.usd(account.equity)} · free collateral {fmt.usd(account.free_collateral)}"
    )
    if items:
        lines.append("/close MARKET closes one position; /panic closes everything.")
    return "\n".join(lines)


def _order_line(order: OpenOrder) -> str:
    kind = order.kind.value.lower().replace("_", " ")
    text = (
        f"<b>{escape(order.market)}</b> {order.side.value} {kind} {fmt.number(order.size)}"
        f" @ {fmt.price(order.price)}"
    )
    if order.trigger_price is not None:
        text += f", trigger {fmt.price(order.trigger_price)}"
    if order.filled_size > 0:
        text += f" (filled {fmt.number(order.filled_size)})"
    if order.reduce_only:
        text += " · reduce-only"
    if order.status == "UNTRIGGERED":
        text += " · waiting for trigger"
    return text


def orders(items: list[OpenOrder], *, paper: bool) -> str:
    """Open orders, conditional ones included."""
    lines = [f"📋 <b>Open orders</b> ({_venue(paper)})"]
    if not items:
        lines.append("No open orders.")
    stops = _CONDITIONAL_KINDS
    ordered = sorted(items, key=lambda o: (o.market, o.kind in stops, o.client_id))
    lines += [_order_line(order) for order in ordered]
    if items:
        lines.append("\n/panic cancels them all (and closes every position).")
    return "\n".join(lines)


def close_usage() -> str:
    """/close without a market."""
    return "Send /close and a market, e.g. /close ETH-USD. /positions lists your positions."


def not_a_market(text: str) -> str:
    """/close with something that is not a market."""
    return f"{escape(text[:32])} is not a market like ETH-USD. /positions lists yours."


def closing(market: str) -> str:
    """Before the closing order is sent."""
    return f"⏳ Closing your {escape(market)} position with a reduce-only market order…"


def nothing_to_close(market: str) -> str:
    """No position in that market."""
    return f"You have no open {escape(market)} position. /positions lists yours."


def _close_line(result: CloseResult) -> str:
    market = escape(result.market)
    if result.state is OrderState.FILLED and result.average_price is not None:
        return (
            f"{market}: {_side(result.side)} {fmt.number(result.filled_size)} "
            f"@ {fmt.price(result.average_price)}, closed"
        )
    if result.filled_size > 0 and result.average_price is not None:
        rest = result.size - result.filled_size
        why = f" ({escape(result.reason)})" if result.reason else ""
        return (
            f"{market}: only {fmt.number(result.filled_size)} of {fmt.number(result.size)} "
            f"filled @ {fmt.price(result.average_price)}{why}; {fmt.number(rest)} still open"
        )
    if result.state in _PENDING:
        return f"{market}: order sent, not confirmed yet; I'll message you when it fills"
    why = escape(result.reason) if result.reason else result.state.value.lower()
    return f"{market}: not closed — {why}"


def closed(result: CloseResult) -> str:
    """The outcome of /close."""
    venue = " (paper)" if result.paper else ""
    if result.state is OrderState.FILLED:
        head = "✅ Closed"
    elif result.state in _PENDING:
        head = "⏳ Sent"
    elif result.filled_size > 0:
        head = "⚠️ Partly closed"
    else:
        why = escape(result.reason) if result.reason else result.state.value.lower()
        return (
            f"❌ {escape(result.market)} was not closed{venue}: {why}.\n"
            f"Send /close {escape(result.market)} to try again."
        )
    text = f"{head}{venue}: {_close_line(result)}."
    if result.state is not OrderState.FILLED and result.state not in _PENDING:
        text += f"\nSend /close {escape(result.market)} for the rest."
    return text


def not_ready(reason: str) -> str:
    """The trader cannot trade (no key, compliance...)."""
    return f"I can't do that yet: {escape(reason)}."


def unavailable() -> str:
    """dYdX did not answer."""
    return "dYdX is not answering, try again in a minute. Nothing was changed."


def refused(reason: str) -> str:
    """dYdX refused for good."""
    return f"❌ dYdX refused: {escape(reason)}"


def unknown_outcome() -> str:
    """Sent, but no answer."""
    return (
        "⏳ The order was sent but dYdX did not confirm it. I'm checking; /positions shows "
        "the result in a minute."
    )


def failed(detail: str) -> str:
    """Any other exchange error."""
    return f"❌ That failed: {escape(detail)}. Check /positions before trying again."


def manual_gave_up() -> str:
    """A /close, /panic or protection change that several runs could not finish."""
    return (
        "⚠️ I could not finish that after several tries, and will not try again. Check "
        "/positions and /orders, then ask again if something is still open."
    )


def change_queued(market: str) -> str:
    """A protection change passed its checks and went to the worker."""
    return f"⏳ Changing the protection of your {escape(market)} position; I'll confirm here."


def confirm_panic(seconds: int) -> str:
    """The question before /panic acts."""
    return (
        "🛑 <b>Close everything?</b>\n"
        "This cancels every open order, closes every position with reduce-only market "
        "orders and pauses trading.\n"
        f"Confirm within {seconds} seconds."
    )


def panic_running() -> str:
    """Replaces the question once confirmed."""
    return "🛑 Cancelling every order and closing every position…"


def panic_expired() -> str:
    """A stale confirmation."""
    return "This confirmation expired; nothing was done. Send /panic again if you still want to."


def panic_cancelled() -> str:
    """The trader chose to keep everything."""
    return "Nothing was done: your orders and positions are as they were."


def panic_report(report: PanicReport) -> str:
    """What /panic did."""
    lines = [f"🛑 <b>Panic done</b> ({_venue(report.paper)})"]
    lines.append("⏸ Trading is paused: alerts are recorded, not executed, until /resume.")
    if report.cancelled:
        plural = "" if report.cancelled == 1 else "s"
        lines.append(f"Cancelled {report.cancelled} open order{plural}.")
    if report.closed:
        lines.append("Positions:")
        lines += [f"• {_close_line(result)}" for result in report.closed]
    if not report.cancelled and not report.closed and not report.failures:
        lines.append("There was nothing open: no orders, no positions.")
    if report.failures:
        lines.append("⚠️ <b>Not done</b> (check /positions and /orders):")
        lines += [f"• {escape(failure)}" for failure in report.failures]
    return "\n".join(lines)


def panic_not_ready(reason: str) -> str:
    """/panic could not reach the account (it is paused all the same)."""
    return (
        f"⏸ Trading is paused, but I couldn't reach your account: {escape(reason)}. "
        "Check /positions and /orders."
    )


def ask_stop(market: str) -> str:
    """After "Move stop-loss": what to send."""
    return (
        f"Send the new stop-loss for {escape(market)}: a price like 2950, or a percentage "
        "from your entry like 1.5%. /cancel keeps it as it is."
    )


def confirm_remove_tp(market: str) -> str:
    """The question before the take-profit is cancelled."""
    return f"Remove the take-profit of your {escape(market)} position? The stop-loss stays."


def kept() -> str:
    """The trader changed their mind."""
    return "Nothing was changed."


def ask_protection_stop(market: str) -> str:
    """After "Add protection": the stop-loss first."""
    return (
        f"Send the stop-loss for your {escape(market)} position: a price like 2950, or a "
        "percentage from your entry like 1.5%. /cancel leaves it unprotected."
    )


def ask_protection_take(market: str) -> str:
    """Then the optional take-profit."""
    return (
        f"And a take-profit for {escape(market)}? A price, a percentage from your entry like "
        "3%, or “none”."
    )
