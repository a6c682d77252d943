"""What the exchange's refusals mean for the trader, in plain words.

The venue maps its own answers (on dYdX: the chain's ABCI codes, in
:mod:`core.exchange.dydx.errors`) onto these reasons; the trader reads them after
``❌ dYdX refused:`` or in an order's notification.
"""

from __future__ import annotations

from decimal import Decimal

from core.texts import fmt

# The trading key.
KEY_NOT_AUTHORISED = (
    "the API trading key is no longer authorised on your dYdX account: set up a new one with /key"
)
KEY_NOT_ALLOWED = (
    "the API trading key is not allowed to trade this market or subaccount: "
    "check its permissions or set up a new one with /key"
)

# Funds and limits of the account.
NOT_ENOUGH_COLLATERAL = (
    "not enough free collateral for this order: deposit USDC, reduce the size or the leverage"
)
NOT_ENOUGH_FUNDS_FOR_FEES = "not enough funds to pay the transaction"
FEE_TOO_LOW = "the transaction fee is too low"
TOO_MANY_ORDERS_ON_SIDE = "too many open orders on this market and side: cancel some first"
TOO_MANY_ORDERS_FOR_EQUITY = (
    "too many open orders for your account equity: cancel some or deposit USDC"
)

# The order itself.
ORDER_GONE = "the order no longer exists (already filled, cancelled or expired)"
INVALID_SIDE = "the order side is invalid"
INVALID_SIZE = "the order size is zero or invalid for this market"
NO_EXPIRY_BLOCK = "the order has no valid expiry block"
INVALID_PRICE = "the order price is zero or invalid for this market"
ALREADY_CANCELLED = "an order with this id was already cancelled; send a new order"
MARKET_NOT_LISTED = "this market is not listed on dYdX"
CANCEL_PENDING = "a cancel for this order is already pending"
OFF_GRID = "the order size or price is not on the market's step or tick grid"
SAME_ID_OPEN = (
    "an order with this id is already open with a later or equal expiry "
    "(an order can only be replaced with the same side and options and a later expiry)"
)
ALREADY_FULLY_FILLED = "this order was already fully filled"
MARKET_NOT_ACCEPTING = (
    "the market does not accept this order now (paused, cancel-only or post-only)"
)
FOK_NOT_FILLED = "the fill-or-kill order could not be filled completely"
REDUCE_ONLY_WOULD_INCREASE = (
    "a reduce-only order would increase the position: there is nothing to reduce"
)
REDUCE_ONLY_WOULD_FLIP = "a reduce-only order would flip the position to the other side"
POST_ONLY_WOULD_CROSS = "the post-only order would trade at once: move the limit price away"
FILLED_REST_CANCELLED = "this order was already filled; the rest was cancelled"
UNSUPPORTED_KIND = "the order kind is not supported"
NO_EXPIRY_TIME = "the order has no valid expiry time"
RESTING_NOT_IMMEDIATE = "a resting (long-term) order cannot be immediate-or-cancel or fill-or-kill"
EXPIRY_PASSED = "the order expiry time has already passed"
EXPIRY_TOO_FAR = "the order expiry time is more than 95 days away"
ALREADY_OPEN = "this order is already open on the exchange"
CANCELLED_BEFORE = "an order with this id was cancelled before; send a new order"
REMOVED_BEFORE = "an order with this id was removed before; send a new order"
INVALID_CONDITION_TYPE = "the stop-loss / take-profit type of the order is invalid"
INVALID_TRIGGER_PRICE = "the trigger price of the order is invalid"
REDUCE_ONLY_NEEDS_IOC = "reduce-only is only allowed for immediate-or-cancel orders"
UNREADABLE_TRANSACTION = "the exchange could not read the transaction"

# Transient refusals, retried without the trader doing anything.
RATE_LIMITED = "the exchange's order rate limit was hit; trying again shortly"
EXPIRED_IN_TRANSIT = "the order expired before it reached the exchange; trying again"
EXPIRY_AHEAD_OF_NODE = "the order expiry was too far ahead of the node; trying again"
SEQUENCE_CHANGED = "the account sequence changed under us; trying again"
STALE_SIGNATURE = "the order's signature is out of date (its time nonce is too old); signing again"

# Outcomes of sending.
NO_ANSWER = "no answer from the exchange after sending: the order may or may not exist"
ALREADY_BROADCAST = "the same transaction was already broadcast"


def refused_with_code(codespace: str, code: int) -> str:
    """A refusal the venue's known answers do not explain: its diagnostic code."""
    return f"the exchange refused the order ({codespace or 'unknown'} error {code})"


# A market's grid (sizes and prices) ------------------------------------------------------


def not_finite(what: str) -> str:
    """An amount that is infinite or not a number."""
    return f"the {what} is not a finite number"


def size_below_step(size: Decimal, step: Decimal) -> str:
    """The size is under one step, the market's minimum order size."""
    return f"the size {fmt.size(size)} is below the market's minimum order size {fmt.size(step)}"


def size_off_step(size: Decimal, step: Decimal) -> str:
    """The size is not a whole number of steps."""
    return f"the size {fmt.size(size)} is not a multiple of the market's step size {fmt.size(step)}"


def price_off_tick(price: Decimal, tick: Decimal) -> str:
    """The price is not a whole number of ticks."""
    return (
        f"the price {fmt.number(price)} is not a positive multiple of the market's tick "
        f"size {fmt.number(tick)}"
    )


PRICE_NOT_POSITIVE = "the price must be positive"
ORACLE_NOT_POSITIVE = "the oracle price must be positive"
SLIPPAGE_OUT_OF_RANGE = "the slippage must be at least 0 and below 100 %"
