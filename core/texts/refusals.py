"""Why an alert did not become an order: the plain-words reasons of order planning.

Each reason says what happened and what to change; the notification around it (``❌ …``) is
composed elsewhere.
"""

from __future__ import annotations

from decimal import Decimal

from core.texts import fmt

COMPLIANCE_BLOCKED = (
    "dYdX reports your address as blocked: no order can be placed. /key shows the status."
)
COMPLIANCE_CLOSE_ONLY = (
    "dYdX reports your address as close-only: only orders that reduce a position are possible."
)
NO_EQUITY = "your dYdX subaccount has no equity: deposit USDC first"


def nothing_to_close(market: str) -> str:
    """A close (or ``position: flat``) alert while already flat."""
    return f"no open {market} position to close"


def below_minimum(market: str, minimum: Decimal) -> str:
    """The sized order is smaller than the market's minimum order size."""
    return (
        f"the order size is below {market}'s minimum of {fmt.size(minimum)}: "
        "raise the alert's size (or the default size in /settings)"
    )


def market_not_allowed(market: str) -> str:
    """The market is not in the trader's allowed markets."""
    return f"{market} is not in your allowed markets: add it in /settings or change the alert"


def market_not_trading(market: str, status: str) -> str:
    """The market is paused, cancel-only, etc. (``status`` as the venue names it)."""
    return f"{market} is {status.lower().replace('_', ' ')} on dYdX and takes no new orders now"


def daily_loss(loss: Decimal, limit: Decimal) -> str:
    """Today's realized ``loss`` (positive) reached the trader's daily ``limit``."""
    return (
        f"today's realized loss {fmt.usd(loss)} reached your daily limit of "
        f"{fmt.usd(limit)}: trading is paused. /resume when you are ready, or change the "
        "limit in /settings"
    )


def above_max_notional(notional: Decimal, limit: Decimal) -> str:
    """The order is worth more than the per-order limit."""
    return (
        f"the order is worth {fmt.usd(notional)}, above your limit of "
        f"{fmt.usd(limit)} per order: lower the size or raise the limit in /settings"
    )


def max_positions(open_positions: int) -> str:
    """Opening one more position would exceed the open-positions limit."""
    return (
        f"you already have {open_positions} open positions, your limit: close one or "
        "raise the limit in /settings"
    )


def above_max_leverage(leverage: Decimal, cap: Decimal) -> str:
    """The account's leverage after the order would exceed the trader's cap."""
    return (
        f"after this order your leverage would be {leverage:.2f}x, above your cap of "
        f"{cap}x: lower the size or raise the cap in /settings"
    )
