"""Texts of protection notifications: a position's take-profit / stop-loss legs (HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from html import escape

from core.texts import fmt

PAPER_TAG = "📝 PAPER · "


class ClosedBy(StrEnum):
    """Who or what ended the position a bracket protected."""

    ALERT = "ALERT"  # a close alert, or an entry that flipped the position
    BOT = "BOT"  # /close or /panic
    OUTSIDE = "OUTSIDE"  # the dYdX web app, another tool
    LIQUIDATION = "LIQUIDATION"


def _head(market: str, paper: bool) -> str:
    return f"{PAPER_TAG if paper else ''}🛡 {market}"


def _legs(take: Decimal | None, stop: Decimal | None) -> str:
    parts = []
    if take is not None:
        parts.append(f"take-profit {fmt.price(take)}")
    if stop is not None:
        parts.append(f"stop-loss {fmt.price(stop)}")
    return " and ".join(parts)


def _leg_names(take: bool, stop: bool) -> str:
    names = [name for name, asked in (("take-profit", take), ("stop-loss", stop)) if asked]
    return " and ".join(names) or "protection"


def protected_text(
    market: str,
    take: Decimal | None,
    stop: Decimal | None,
    size: Decimal,
    *,
    resized: bool,
    paper: bool,
    take_profit_refused: str | None = None,
) -> str:
    """The node accepted every leg of a bracket (first placement or a resize); a refused
    take-profit is named (the stop-loss protects the position without it)."""
    verb = "resized to" if resized else "placed for"
    text = (
        f"<b>{_head(market, paper)} · Protected</b>\n"
        f"{_legs(take, stop)} placed. Legs {verb} {fmt.size(size)} {market} (reduce-only)."
    )
    if take_profit_refused is not None:
        text += (
            f"\nThe chain refused the take-profit: {take_profit_refused}. "
            "Take profit yourself or send the alert again once that is fixed."
        )
    return text


def failed_text(market: str, reason: str, *, paper: bool) -> str:
    """The chain refused a leg: the position is not protected by this entry's legs."""
    return (
        f"<b>⚠️ {_head(market, paper)} · Protection failed</b>\n"
        f"The chain refused a take-profit / stop-loss order: {reason}.\n"
        f"This part of your position has NO stop-loss now. Close it with /close {market}, "
        "or fix the cause and send the alert again."
    )


def leg_hit_text(
    market: str,
    *,
    take_profit: bool,
    realized_pnl: Decimal,
    sibling_cancelled: bool,
    still_covered: Decimal,
    paper: bool,
) -> str:
    """A leg filled: its sibling (of the same entry only) was cancelled."""
    hit, sibling = ("Take-profit", "stop-loss") if take_profit else ("Stop-loss", "take-profit")
    lines = [
        f"<b>{_head(market, paper)} · {hit} hit</b>",
        f"Realized P&amp;L: {fmt.usd(realized_pnl, signed=True)}.",
    ]
    if sibling_cancelled:
        lines.append(f"Its {sibling} was cancelled (only this entry's).")
    if still_covered > 0:
        lines.append(
            f"Your other entries' stop-losses still cover {fmt.size(still_covered)} {market}."
        )
    return "\n".join(lines)


def closed_text(market: str, closed_by: ClosedBy, *, take: bool, stop: bool, paper: bool) -> str:
    """The position ended by another route: its legs were cancelled."""
    how = {
        ClosedBy.ALERT: "was closed (or flipped) by an alert",
        ClosedBy.BOT: "was closed from the bot (/close or /panic)",
        ClosedBy.OUTSIDE: "was closed outside tv2dydx (e.g. in the dYdX app)",
        ClosedBy.LIQUIDATION: "was liquidated",
    }[closed_by]
    return (
        f"<b>{_head(market, paper)} · Protection removed</b>\n"
        f"The position {how}, so its {_leg_names(take, stop)} "
        "orders were cancelled: nothing is left resting."
    )


def reduced_text(market: str, position: Decimal, cancelled: bool, *, paper: bool) -> str:
    """The position shrank: the newest entries' legs were cancelled or resized."""
    what = "were cancelled" if cancelled else "are being resized"
    return (
        f"<b>{_head(market, paper)} · Position reduced</b>\n"
        f"Your position is now {fmt.size(position)} {market}: the newest entries' "
        f"take-profit / stop-loss {what} so the stop-losses cover exactly that."
    )


@dataclass(frozen=True, slots=True)
class StopMoved:
    """One stop-loss a trailing stop or breakeven moved (for :func:`stops_moved_text`)."""

    market: str
    long: bool
    from_trigger: Decimal | None
    to_trigger: Decimal
    breakeven: bool


def stops_moved_text(moves: Sequence[StopMoved], *, paper: bool) -> str:
    """Stop-losses moved since the last such message (one message per few seconds)."""
    lines = [f"<b>{PAPER_TAG if paper else ''}🛡 Stop moved</b>"]
    for move in moves:
        side = "long" if move.long else "short"
        why = "breakeven: entry + fees" if move.breakeven else "trailing"
        was = f"{fmt.price(move.from_trigger)} → " if move.from_trigger is not None else ""
        lines.append(f"{move.market} {side}: stop-loss {was}{fmt.price(move.to_trigger)} ({why})")
    return "\n".join(lines)


# Reasons recorded on a leg or a bracket (shown in /why and the messages above) -----------

LEG_REPLACED = "cancelled: replaced by a resized leg"
LEG_RENEWED = "cancelled: replaced by the same leg with a fresh lifetime (renewed before expiry)"
LEG_STOP_MOVED = "cancelled: the stop-loss moved (trailing stop or breakeven)"
LEG_CANCELLED_SIBLING_FILLED = "cancelled: the other leg of this entry filled"
LEG_CANCELLED_POSITION_CLOSED = "cancelled: the position was closed"
LEG_CANCELLED_POSITION_REDUCED = "cancelled: the position was reduced"
LEG_CANCELLED_PROTECTION_FAILED = "cancelled: the other leg was refused"
NOT_PRICED = "the take-profit / stop-loss prices could not be set on the market's grid"
EXCHANGE_UNREACHABLE = "the exchange could not be reached"


# A trader's own changes from /positions (issue #11 item 6) -------------------------------

LEG_REMOVED_BY_TRADER = "cancelled: the trader removed the take-profit"


def not_a_price(text: str) -> str:
    """The stop-loss typed is not a positive number or percentage."""
    return (
        f"“{escape(text[:32])}” is not a price. Send a price like 2950 or a percentage "
        "from your entry like 1.5%. Nothing was changed."
    )


def stop_off_grid(price: Decimal, tick: Decimal) -> str:
    """The stop-loss price is not a whole number of ticks."""
    return (
        f"{fmt.price(price)} is not on this market's price grid (steps of "
        f"{fmt.price(tick)}). Nothing was changed."
    )


def wrong_side(
    market: str, trigger: Decimal, oracle: Decimal, *, below: bool, stop_loss: bool
) -> str:
    """The stop-loss or take-profit would trigger at once."""
    what = "stop-loss" if stop_loss else "take-profit"
    side = ("long" if below else "short") if stop_loss else ("short" if below else "long")
    where = "below" if below else "above"
    return (
        f"A {side}'s {what} must be {where} the {escape(market)} price now "
        f"({fmt.price(oracle)}); {fmt.price(trigger)} would trigger at once. Nothing was changed."
    )


def already_protected(market: str) -> str:
    """Add protection on a position a stop-loss already protects."""
    return (
        f"Your {escape(market)} position already has a stop-loss: use Move stop-loss in "
        "/positions. Nothing was changed."
    )


ADOPTED_ENTRY = "the position as it was when protection was added from /positions"


def nothing_to_move(market: str) -> str:
    """No open position or no protection to change there."""
    return f"Your {escape(market)} position has no protection to change. /positions lists it."


def stop_moved_text(market: str, stop: Decimal, *, paper: bool) -> str:
    """The stop-loss legs now rest at the new trigger price."""
    return (
        f"<b>{_head(market, paper)} · Stop-loss moved</b>\n"
        f"Your stop-loss now triggers at {fmt.price(stop)} (the old one was cancelled "
        "after the new one was accepted)."
    )


def stop_moving_text(market: str, stop: Decimal, *, paper: bool) -> str:
    """The stop-loss was sent but the chain has not confirmed it yet."""
    return (
        f"<b>{_head(market, paper)} · Placing the stop-loss</b>\n"
        f"The stop-loss at {fmt.price(stop)} was sent; I'll confirm here once the chain "
        "accepts it (a stop-loss it replaces is cancelled only then)."
    )


def take_profit_removed_text(market: str, cancelled: int) -> str:
    """The take-profit legs were cancelled; the stop-loss stays."""
    if not cancelled:
        return f"{escape(market)} has no take-profit resting; nothing was changed."
    return f"🛡 {escape(market)}: take-profit removed. Your stop-loss stays."
