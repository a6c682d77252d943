"""/settings: the trading preferences screen, one screen per preference, typed values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from core.domain.preferences import (
    MAX_LEVERAGE,
    MAX_NOTIONAL_USD,
    MAX_OPEN_POSITIONS,
    MAX_SLIPPAGE_PCT,
    FlipMode,
    PreferenceField,
    Preferences,
    SizeKind,
)
from core.texts import fmt

if TYPE_CHECKING:  # the view type only: texts do not import the services at run time
    from core.services.control.service import ControlStatus

TYPE_BUTTON = "✏️ Type a value"
BACK_BUTTON = "« Back"
DONE_BUTTON = "Done"
CURRENT_MARK = "✅ "
NO_LIMIT_BUTTON = "No limit"
ALL_MARKETS_BUTTON = "All markets"
FLIP_BUTTON = "Flip the position"
REDUCE_BUTTON = "Only reduce / close"
PAPER_ON_BUTTON = "📝 Paper (simulated)"
PAPER_OFF_BUTTON = "💸 Live (real orders)"
DIGEST_OFF_BUTTON = "Off"

#: Button labels of the main screen.
FIELD_BUTTONS: dict[PreferenceField, str] = {
    PreferenceField.SIZE: "Default size",
    PreferenceField.SLIPPAGE: "Slippage",
    PreferenceField.LEVERAGE: "Leverage cap",
    PreferenceField.NOTIONAL: "Max notional",
    PreferenceField.POSITIONS: "Max positions",
    PreferenceField.LOSS_LIMIT: "Daily loss limit",
    PreferenceField.MARKETS: "Allowed markets",
    PreferenceField.FLIP: "Opposite signal",
    PreferenceField.PAPER: "Paper / live",
    PreferenceField.TIMEZONE: "Timezone",
    PreferenceField.DIGEST: "Daily digest",
}

_ABOUT: dict[PreferenceField, str] = {
    PreferenceField.SIZE: (
        "How much an alert without a size trades: a USD amount ($100), a share of your "
        "equity (5%) or base units (0.01)."
    ),
    PreferenceField.SLIPPAGE: (
        "The worst price a market order accepts, as a distance from the oracle price. "
        f"Tighter means fewer bad fills and more orders left unfilled. At most "
        f"{fmt.pct(MAX_SLIPPAGE_PCT)}."
    ),
    PreferenceField.LEVERAGE: (
        "The highest account leverage an order may leave behind; an order that would exceed "
        f"it is refused. At most {fmt.number(MAX_LEVERAGE)}x."
    ),
    PreferenceField.NOTIONAL: (
        f"The largest value of one order, in USD. At most {fmt.usd(MAX_NOTIONAL_USD, whole=True)}."
    ),
    PreferenceField.POSITIONS: (
        "How many markets may have an open position at once; an alert that would open one "
        f"more is refused. From 1 to {MAX_OPEN_POSITIONS}."
    ),
    PreferenceField.LOSS_LIMIT: (
        "Realized loss in one day (in your timezone) that pauses trading until you /resume."
    ),
    PreferenceField.MARKETS: (
        "The markets alerts may trade; alerts for any other market are refused. Type them "
        "separated by spaces or commas (BTC-USD ETH-USD), or all."
    ),
    PreferenceField.FLIP: (
        "What a sell alert does to a long (and a buy to a short). Flip: close it and open "
        "the other side when the strategy says so. Only reduce: never open the other side "
        "from one alert."
    ),
    PreferenceField.PAPER: (
        "Paper mode simulates every order at the live oracle price, with fees and slippage, "
        "on a virtual balance: nothing is sent to dYdX. Live mode trades your real funds."
    ),
    PreferenceField.TIMEZONE: (
        "Times I show you, and the day of the daily loss limit. An IANA name like "
        "Europe/Berlin, or an offset like UTC+2."
    ),
    PreferenceField.DIGEST: (
        "Every morning (or whenever you choose, in your timezone) a summary of the day "
        "before: P&amp;L with a small chart, open positions with their protection, alerts "
        "accepted and rejected. Off by default."
    ),
}

_ASK: dict[PreferenceField, str] = {
    PreferenceField.SIZE: "Send the default size: $100, 5% (of equity) or 0.01 ETH.",
    PreferenceField.SLIPPAGE: (
        f"Send the slippage in percent, e.g. 0.5 (at most {fmt.number(MAX_SLIPPAGE_PCT)})."
    ),
    PreferenceField.LEVERAGE: (
        f"Send the leverage cap, e.g. 3 (at most {fmt.number(MAX_LEVERAGE)})."
    ),
    PreferenceField.NOTIONAL: "Send the largest order value in USD, e.g. 2500.",
    PreferenceField.POSITIONS: f"Send a whole number from 1 to {MAX_OPEN_POSITIONS}.",
    PreferenceField.LOSS_LIMIT: "Send the daily loss limit in USD, e.g. 200, or off.",
    PreferenceField.MARKETS: "Send the markets, e.g. BTC-USD ETH-USD SOL-USD, or all.",
    PreferenceField.FLIP: "Send flip or reduce.",
    PreferenceField.PAPER: "Send on (paper) or off (live).",
    PreferenceField.TIMEZONE: "Send your timezone, e.g. Europe/Berlin, America/New_York or UTC+2.",
    PreferenceField.DIGEST: "Send the digest's hour in your timezone, e.g. 8 or 18:00, or off.",
}


def size(prefs: Preferences) -> str:
    """The default size as a phrase."""
    value = prefs.default_size_value
    if prefs.default_size_kind is SizeKind.USD:
        return fmt.usd(value, whole=True)
    if prefs.default_size_kind is SizeKind.PCT:
        return f"{fmt.pct(value)} of equity"
    return f"{fmt.number(value)} base units"


def value(prefs: Preferences, field: PreferenceField) -> str:
    """One preference's current value, as shown on the screens."""
    if field is PreferenceField.SIZE:
        return size(prefs)
    if field is PreferenceField.SLIPPAGE:
        return fmt.pct(prefs.slippage_pct)
    if field is PreferenceField.LEVERAGE:
        return f"{fmt.number(prefs.max_leverage)}x"
    if field is PreferenceField.NOTIONAL:
        return fmt.usd(prefs.max_notional_usd, whole=True)
    if field is PreferenceField.POSITIONS:
        return str(prefs.max_open_positions)
    if field is PreferenceField.LOSS_LIMIT:
        limit = prefs.daily_loss_limit_usd
        return "no limit" if limit is None else fmt.usd(limit, whole=True)
    if field is PreferenceField.MARKETS:
        return ", ".join(prefs.allowed_markets) if prefs.allowed_markets else "all markets"
    if field is PreferenceField.FLIP:
        return "flip the position" if prefs.flip is FlipMode.FLIP else "only reduce / close"
    if field is PreferenceField.PAPER:
        return "📝 PAPER (simulated)" if prefs.paper else "💸 LIVE (real orders)"
    if field is PreferenceField.DIGEST:
        hour = prefs.digest_hour
        return "off" if hour is None else f"daily at {hour:02d}:00"
    return prefs.timezone


def _mode(prefs: Preferences) -> str:
    if prefs.paper:
        return "📝 <b>PAPER</b>: orders are simulated, nothing is sent to dYdX"
    return "💸 <b>LIVE</b>: orders trade your real funds on dYdX"


def overview(status: ControlStatus, *, note: str | None = None) -> str:
    """The main /settings screen."""
    prefs = status.preferences
    local_now = datetime.now(UTC).astimezone(prefs.zone).strftime("%H:%M")
    trading = "⏸ paused (send /resume)" if status.paused else "▶️ active"
    notify = "a channel (/notify)" if status.notify_chat_id is not None else "this chat"
    lines = []
    if note:
        lines += [note, ""]
    lines += [
        "⚙️ <b>Settings</b>",
        "",
        f"Trading: {trading}",
        f"Mode: {_mode(prefs)}",
        "",
        f"Default size: {size(prefs)} per alert without a size",
        f"Slippage: {fmt.pct(prefs.slippage_pct)} from the oracle price",
        f"Leverage cap: {value(prefs, PreferenceField.LEVERAGE)}",
        f"Max notional: {fmt.usd(prefs.max_notional_usd, whole=True)} per order",
        f"Max open positions: {prefs.max_open_positions}",
        f"Daily loss limit: {value(prefs, PreferenceField.LOSS_LIMIT)}",
        f"Allowed markets: {escape(value(prefs, PreferenceField.MARKETS))}",
        f"Opposite signal: {value(prefs, PreferenceField.FLIP)}",
        f"Timezone: {escape(prefs.timezone)} (now {local_now})",
        f"Notifications: {notify}",
        f"Daily digest: {value(prefs, PreferenceField.DIGEST)}",
        "",
        "Tap a setting to change it.",
    ]
    return "\n".join(lines)


def field_screen(prefs: Preferences, field: PreferenceField) -> str:
    """One preference: what it does, its value, and the choices."""
    return (
        f"⚙️ <b>{FIELD_BUTTONS[field]}</b>\n\n"
        f"{_ABOUT[field]}\n\n"
        f"Now: <b>{escape(value(prefs, field))}</b>\n\n"
        f"Pick a value, or tap “{TYPE_BUTTON}”."
    )


def saved(prefs: Preferences, field: PreferenceField) -> str:
    """The note above the main screen after a change."""
    return f"✅ {FIELD_BUTTONS[field]}: {escape(value(prefs, field))}"


def ask_value(prefs: Preferences, field: PreferenceField) -> str:
    """The prompt for a typed value."""
    return f"{_ASK[field]}\nNow: {escape(value(prefs, field))}. Send /cancel to keep it."


def refused(reason: str) -> str:
    """A typed value was refused (nothing changed)."""
    return f"❌ {escape(reason)}\nNothing changed. Try again, or send /cancel."


def text_only() -> str:
    """Something other than text was sent while a value was expected."""
    return "Send the value as a text message, or /cancel."


def cancelled() -> str:
    """After /cancel while typing a value."""
    return "Kept your settings as they were. /settings shows them."


def expired() -> str:
    """A typed value arrived after the question was forgotten (e.g. a restart)."""
    return "I lost track of which setting you were changing. Send /settings and pick it again."


def saved_toast() -> str:
    """The short pop-up after a button changed a value."""
    return "Saved"


# Refused preference values (``PreferenceInputError``): the field's name, then what is accepted.

#: How a refusal names each preference.
INPUT_LABELS: dict[PreferenceField, str] = {
    PreferenceField.SIZE: "Default size",
    PreferenceField.SLIPPAGE: "Slippage",
    PreferenceField.LEVERAGE: "Leverage cap",
    PreferenceField.NOTIONAL: "Max notional",
    PreferenceField.POSITIONS: "Max open positions",
    PreferenceField.LOSS_LIMIT: "Daily loss limit",
    PreferenceField.MARKETS: "Allowed markets",
    PreferenceField.FLIP: "Flip behaviour",
    PreferenceField.PAPER: "Paper mode",
    PreferenceField.TIMEZONE: "Timezone",
    PreferenceField.DIGEST: "Daily digest",
}
_INPUT_EXAMPLES: dict[PreferenceField, str] = {
    PreferenceField.SIZE: "$100, 5% or 0.01 ETH",
    PreferenceField.SLIPPAGE: "0.5",
    PreferenceField.LEVERAGE: "3",
    PreferenceField.NOTIONAL: "2500",
    PreferenceField.LOSS_LIMIT: "200, or off",
    PreferenceField.POSITIONS: "5",
}
#: Units after a bound in :func:`input_out_of_bounds`.
UNIT_EQUITY_PCT = "% of equity"
UNIT_USD = " USD"
UNIT_PCT = "%"
UNIT_LEVERAGE = "x"

INPUT_TOO_LONG = "That is too long for a setting."
MARKETS_EMPTY = "Allowed markets: send tickers like BTC-USD ETH-USD, or all."
TIMEZONE_OFFSET_RANGE = "Timezone: UTC offsets go from -12 to +14."
TIMEZONE_UNKNOWN = (
    "Timezone: send a name like Europe/Berlin or America/New_York, or an offset like UTC+2."
)
FLIP_REFUSED = "Flip behaviour: flip or reduce."
PAPER_REFUSED = "Paper mode: on or off."
DIGEST_REFUSED = "Daily digest: an hour from 0 to 23 (e.g. 8 or 18:00), or off."


def input_not_a_number(field: PreferenceField) -> str:
    """A value that is not a plain number."""
    example = _INPUT_EXAMPLES.get(field, "10")
    return f"{INPUT_LABELS[field]}: send a number, e.g. {example}."


def input_too_precise(field: PreferenceField, places: int) -> str:
    """A number with too many decimal places."""
    return f"{INPUT_LABELS[field]}: at most {places} decimal places."


def input_too_large(field: PreferenceField) -> str:
    """A number with more digits than a ``Decimal`` holds."""
    return f"{INPUT_LABELS[field]}: that number is too large."


def input_out_of_bounds(field: PreferenceField, maximum: Decimal, unit: str = "") -> str:
    """A number at or below zero or above the cap."""
    return f"{INPUT_LABELS[field]} must be above 0 and at most {fmt.number(maximum)}{unit}."


def input_unrecognised(field: PreferenceField) -> str:
    """A value of no accepted shape, answered with an example."""
    return f"{INPUT_LABELS[field]}: send e.g. {_INPUT_EXAMPLES[field]}."


def markets_too_many(limit: int) -> str:
    """More allowed markets than the cap."""
    return f"Allowed markets: at most {limit} markets."


def market_unknown(shown: str) -> str:
    """One of the allowed markets is not a market ticker."""
    return f"Allowed markets: {shown} is not a market like BTC-USD."


def positions_refused(maximum: int) -> str:
    """Max open positions outside 1..``maximum``."""
    return f"Max open positions: send a whole number from 1 to {maximum}."
