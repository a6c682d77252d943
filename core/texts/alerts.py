"""Why an alert was refused at intake: the body, then each field (shown to the trader).

A field's reason follows its name (``size: must be a number``), in the webhook's answer to
the sender, in /webhook and in /why.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

# The body -------------------------------------------------------------------------------

BODY_NOT_UTF8 = "body is not UTF-8 text"
BODY_EMPTY = "body is empty"
BODY_NOT_JSON = "body is not valid JSON"
BODY_NOT_OBJECT = "body must be a JSON object"

# One field's value ----------------------------------------------------------------------

NOT_A_NUMBER = "must be a number"
NOT_FINITE = "must be a finite number"
NEGATIVE = "must not be negative"
NOT_POSITIVE = "must be greater than zero"
NOT_A_SYMBOL = "must be a symbol like BTC-USD"
NOT_USD_QUOTED = "must be quoted in USD (like BTC-USD)"
NOT_A_TIME = "must be a time like 2024-05-01T12:00:00Z"
TIME_OUT_OF_RANGE = "must be a time between 2000 and 2100"
NOT_TEXT = "must be text"
EMPTY = "must not be empty"
CONTROL_CHARACTERS = "must not contain control characters"
NOT_BOOLEAN = "must be true or false"


def at_least(minimum: Decimal) -> str:
    """A number below its minimum (the bound as the rules hold it)."""
    return f"must be at least {minimum}"


def at_most(maximum: Decimal) -> str:
    """A number above its maximum (the bound as the rules hold it)."""
    return f"must be at most {maximum}"


def too_many_decimals(places: int) -> str:
    """A number more precise than the ledger stores."""
    return f"has more than {places} decimal places"


def too_long(limit: int) -> str:
    """A label longer than ``limit`` characters."""
    return f"must be at most {limit} characters"


def one_of(options: str) -> str:
    """A choice outside ``options`` (comma-separated)."""
    return f"must be one of {options}"


# Fields together ------------------------------------------------------------------------

UNKNOWN_FIELD = "unknown field"
REQUIRED = "is required"
ACTION_REQUIRED = "is required (buy, sell or close)"
LEVERAGE_AND_PCT = "give either size_pct or sizeByLeverage, not both"
ONE_SIZING = "give only one of size, size_usd, size_pct"
SIZING_REQUIRED = "is required: give one of size, size_usd, size_pct"
CLOSE_NOT_FLAT = "must be flat (or absent) when action is close"
LIMIT_PRICE_REQUIRED = "is required for a limit order"


def either_not_both(native: str, alias: str) -> str:
    """A field given both by its native name and by its TAC alias."""
    return f"give either {native} or {alias}, not both"


BREAKEVEN_NEEDS_STOP = "needs a stop-loss to move: give sl_pct, sl_price or trail_pct too"


def only_one_of(first: str, second: str) -> str:
    """Two fields that exclude each other, both given."""
    return f"give only one of {first}, {second}"


# Intake's verdicts ----------------------------------------------------------------------

WRONG_PASSPHRASE = "wrong passphrase"  # noqa: S105 - a refusal reason, not a secret
TRADING_PAUSED = "trading is paused"
UNAVAILABLE = "temporarily unavailable"


def invalid(detail: str) -> str:
    """The alert failed validation (``detail`` lists the fields)."""
    return f"invalid alert: {detail}"


def stale_past(lag_seconds: int, limit_seconds: int) -> str:
    """The alert's own time is too old."""
    return f"stale: sent {lag_seconds} s ago (limit {limit_seconds} s)"


def stale_future(ahead_seconds: int, limit_seconds: int) -> str:
    """The alert's own time is too far in the future (a wrong clock)."""
    return f"stale: its time is {ahead_seconds} s in the future (limit {limit_seconds} s)"


def rate_limited(bucket: str | None) -> str:
    """Too many alerts for this webhook (``token``) or from this address (``ip``)."""
    return f"rate limited ({bucket})"


def rejection_notice(reason: str, strategy: str | None, window_minutes: int) -> str:
    """The Telegram message (HTML) telling a trader an alert of theirs was refused."""
    label = f" from <b>{escape(strategy)}</b>" if strategy else ""
    return (
        f"⚠️ An alert{label} was refused: {escape(reason)}\n"
        "Fix the alert message in TradingView. /webhook lists the latest alerts; "
        f"further refusals in the next {window_minutes} minutes are listed "
        "there without a message."
    )
