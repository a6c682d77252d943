"""Texts of trade notifications (HTML, as the bot sends them). Numbers only, never secrets."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from html import escape

from core.domain.states import OrderSide, PositionSide
from core.texts import fmt

PAPER_TAG = "📝 PAPER · "


def _label(alert_id: int, strategy: str | None) -> str:
    label = f"alert #{alert_id}"
    return f"{label} · {escape(strategy)}" if strategy else label


@dataclass(frozen=True, slots=True)
class FillSummary:
    """What a filled (or partly filled) order did.

    Attributes:
        alert_id: Our alert id (None for a manual order).
        strategy: The alert's strategy label.
        market: Ticker.
        side: BUY or SELL.
        size: Ordered size.
        filled_size: Filled size.
        average_price: Size-weighted fill price.
        fee: Fees paid in USD.
        reference_price: The alert's price (or the oracle when the order was signed).
        realized_pnl: PnL realized by the fills (fees included); None when the order
            only opened or added.
        position_side: Side of the position after the order (None when flat).
        position_size: Its size.
        paper: Whether simulated.
        purpose: ``ENTRY``, ``CLOSE``, ``TAKE_PROFIT``, ``STOP_LOSS`` or ``MANUAL``.
    """

    alert_id: int | None
    strategy: str | None
    market: str
    side: OrderSide
    size: Decimal
    filled_size: Decimal
    average_price: Decimal
    fee: Decimal
    reference_price: Decimal | None
    realized_pnl: Decimal | None
    position_side: PositionSide | None
    position_size: Decimal
    paper: bool
    purpose: str


_PURPOSE_TITLES = {
    "TAKE_PROFIT": "🎯 Take-profit hit",
    "STOP_LOSS": "🛑 Stop-loss hit",
    "CLOSE": "✅ Closed",
    "MANUAL": "✅ Closed",
}


#: What a fill's price is compared with, by the order's purpose.
_REFERENCES = {"TAKE_PROFIT": "the trigger", "STOP_LOSS": "the trigger", "MANUAL": "the oracle"}


def slippage_line(fill: FillSummary) -> str | None:
    """How far the average price is from the reference, in words a trader reads at once:
    ``Price: 0.017% worse than $2,999.50 (the alert's price)``; None without a reference."""
    if not fill.reference_price:
        return None
    # Positive = worse for the trader: a buy paid more, a sell got less.
    direction = 1 if fill.side is OrderSide.BUY else -1
    slip = (fill.average_price - fill.reference_price) / fill.reference_price * 100 * direction
    reference = _REFERENCES.get(fill.purpose, "the alert's price")
    if abs(slip) < Decimal("0.0005"):
        return f"Price: exactly {fmt.price(fill.reference_price)} ({reference})"
    word = "worse" if slip > 0 else "better"
    return f"Price: {abs(slip):.3f}% {word} than {fmt.price(fill.reference_price)} ({reference})"


def filled_text(fill: FillSummary) -> str:
    """The message for a filled order."""
    verb = "Bought" if fill.side is OrderSide.BUY else "Sold"
    title = _PURPOSE_TITLES.get(fill.purpose, "✅ Filled")
    partial = fill.filled_size < fill.size
    lines = [
        f"{PAPER_TAG if fill.paper else ''}<b>{title}</b>"
        + (f" · {_label(fill.alert_id, fill.strategy)}" if fill.alert_id is not None else ""),
        f"{verb} <b>{fmt.size(fill.filled_size)}</b> {fill.market} "
        f"at <b>{fmt.price(fill.average_price)}</b> (average)",
    ]
    if partial:
        lines.append(f"Partly filled: {fmt.size(fill.filled_size)} of {fmt.size(fill.size)}.")
    lines.append(f"Fees: {fmt.usd(fill.fee)}")
    slippage = slippage_line(fill)
    if slippage is not None:
        lines.append(slippage)
    if fill.realized_pnl is not None:
        lines.append(f"Realized PnL: <b>{fmt.usd(fill.realized_pnl, signed=True)}</b>")
    if fill.position_side is None or fill.position_size == 0:
        lines.append(f"Position: flat on {fill.market}")
    else:
        lines.append(
            f"Position: {fill.position_side.value} {fmt.size(fill.position_size)} {fill.market}"
        )
    return "\n".join(lines)


def rejected_text(
    alert_id: int | None, strategy: str | None, market: str, reason: str, *, paper: bool
) -> str:
    """The exchange refused the order."""
    head = f"{PAPER_TAG if paper else ''}<b>❌ Order refused by dYdX</b>"
    if alert_id is not None:
        head += f" · {_label(alert_id, strategy)}"
    return f"{head}\n{market}: {escape(reason)}"


def failed_text(alert_id: int, strategy: str | None, market: str | None, reason: str) -> str:
    """The alert was not executed (risk limit, key missing, exchange down...)."""
    where = f"{market}: " if market else ""
    return f"<b>⚠️ Not executed</b> · {_label(alert_id, strategy)}\n{where}{escape(reason)}"


def expired_text(
    alert_id: int, strategy: str | None, market: str | None, age_seconds: float, limit: int
) -> str:
    """The alert was too old when its turn came."""
    where = f" ({market})" if market else ""
    return (
        f"<b>⌛ Expired</b> · {_label(alert_id, strategy)}{where}\n"
        f"It was {age_seconds:.0f} s old when it could be executed, over the {limit} s limit "
        "(ALERT_MAX_LAG_SECONDS), so it was not executed. Check your position with /positions."
    )


def unfilled_text(
    alert_id: int | None, strategy: str | None, market: str, reason: str, *, paper: bool
) -> str:
    """The order reached the exchange but nothing filled (IOC cancelled, expired)."""
    head = f"{PAPER_TAG if paper else ''}<b>⚪ Not filled</b>"
    if alert_id is not None:
        head += f" · {_label(alert_id, strategy)}"
    return f"{head}\n{market}: {escape(reason)}"


def paused_for_loss_text(loss: Decimal, limit: Decimal) -> str:
    """Trading was paused by the daily loss limit."""
    return (
        f"<b>⏸ Trading paused</b>\nToday's realized loss {fmt.usd(loss)} reached your daily limit "
        f"of {fmt.usd(limit)}. Alerts are still recorded but not executed. /resume when ready."
    )


# Reasons recorded on an alert or order (shown in /why, /webhook and the messages above) --

TRADING_PAUSED = "trading is paused"
NO_ORDER_IN_TIME = "no order was placed in time"
EXPIRED_BEFORE_BOOK = "the order expired before it reached the order book"
NOT_PLACED_IN_TIME = (
    "the order never reached dYdX in time, so nothing was placed; "
    "send the alert again if you still want it"
)
SIGNATURE_KEPT_STALE = (
    "dYdX kept refusing the order's signature as out of date, so nothing was placed; "
    "check that the server's clock is right, then send the alert again"
)
NOTHING_FILLED = (
    "nothing filled within the worst acceptable price "
    "(raise slippage_pct in the alert or in /settings)"
)
SEND_START_FIRST = "send /start first"
ORDER_NOT_IN_LEDGER = "the order disappeared from the ledger"


def not_a_market(market: str) -> str:
    """The alert names a market the exchange does not list."""
    return f"{market} is not a market on dYdX"


# Why a trader cannot trade yet, read after "I can't do that yet: ".
NO_KEY = "add your dYdX API trading key with /key first (or turn on paper trading in /settings)"
KEY_UNREADABLE = (
    "your stored API trading key can no longer be decrypted (the server's encryption keys "
    "changed): add it again with /key"
)
