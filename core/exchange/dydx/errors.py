"""The dYdX v4 chain's ABCI answers, mapped onto the venue-neutral error tree.

The codes are the registered ones of v4-chain ``x/clob/types/errors.go``,
``x/subaccounts/types/errors.go``, ``x/accountplus/types/errors.go`` and cosmos-sdk
``types/errors``; only this module knows them.
"""

from __future__ import annotations

from core.exchange.errors import (
    AlreadyPlacedError,
    ExchangeError,
    OrderAlreadyKnownError,
    PermanentExchangeError,
    RetryableExchangeError,
)

KEY_NOT_AUTHORISED = (
    "the API trading key is no longer authorised on your dYdX account: set up a new one with /key"
)
KEY_NOT_ALLOWED = (
    "the API trading key is not allowed to trade this market or subaccount: "
    "check its permissions or set up a new one with /key"
)
NOT_ENOUGH_COLLATERAL = (
    "not enough free collateral for this order: deposit USDC, reduce the size or the leverage"
)

#: (codespace, code) → reason, for errors that sending again cannot fix. The codes are the
#: registered ones of v4-chain ``x/clob/types/errors.go``, ``x/subaccounts/types/errors.go``,
#: ``x/accountplus/types/errors.go`` and cosmos-sdk ``types/errors``.
_PERMANENT: dict[tuple[str, int], str] = {
    ("clob", 2): "the order no longer exists (already filled, cancelled or expired)",
    ("clob", 3): "the order side is invalid",
    ("clob", 4): "the order size is zero or invalid for this market",
    ("clob", 5): "the order has no valid expiry block",
    ("clob", 6): "the order price is zero or invalid for this market",
    ("clob", 7): "an order with this id was already cancelled; send a new order",
    ("clob", 8): "this market is not listed on dYdX",
    ("clob", 9): "a cancel for this order is already pending",
    ("clob", 12): "the order size or price is not on the market's step or tick grid",
    ("clob", 17): "too many open orders on this market and side: cancel some first",
    ("clob", 20): (
        "an order with this id is already open with a later or equal expiry "
        "(an order can only be replaced with the same side and options and a later expiry)"
    ),
    ("clob", 24): "this order was already fully filled",
    ("clob", 34): "the market does not accept this order now (paused, cancel-only or post-only)",
    ("clob", 2000): "the fill-or-kill order could not be filled completely",
    ("clob", 2001): "a reduce-only order would increase the position: there is nothing to reduce",
    ("clob", 2002): "a reduce-only order would flip the position to the other side",
    ("clob", 2003): "the post-only order would trade at once: move the limit price away",
    ("clob", 2004): "this order was already filled; the rest was cancelled",
    ("clob", 3000): "the order kind is not supported",
    ("clob", 3001): "the order has no valid expiry time",
    ("clob", 3002): "a resting (long-term) order cannot be immediate-or-cancel or fill-or-kill",
    ("clob", 3003): "the order expiry time has already passed",
    ("clob", 3004): "the order expiry time is more than 95 days away",
    ("clob", 3005): "this order is already open on the exchange",
    ("clob", 3006): "the order no longer exists (already filled, cancelled or expired)",
    ("clob", 3007): NOT_ENOUGH_COLLATERAL,
    ("clob", 3008): "an order with this id was cancelled before; send a new order",
    ("clob", 3009): "an order with this id was removed before; send a new order",
    ("clob", 6000): "the stop-loss / take-profit type of the order is invalid",
    ("clob", 6001): "the trigger price of the order is invalid",
    ("clob", 9003): "reduce-only is only allowed for immediate-or-cancel orders",
    ("clob", 10001): "too many open orders for your account equity: cancel some or deposit USDC",
    ("subaccounts", 102): NOT_ENOUGH_COLLATERAL,
    ("sdk", 2): "the exchange could not read the transaction",
    ("sdk", 4): KEY_NOT_AUTHORISED,
    ("sdk", 5): "not enough funds to pay the transaction",
    ("sdk", 13): "the transaction fee is too low",
    ("accountplus", 1): KEY_NOT_AUTHORISED,
    ("accountplus", 100): KEY_NOT_AUTHORISED,
    ("accountplus", 101): KEY_NOT_ALLOWED,
    ("accountplus", 102): KEY_NOT_ALLOWED,
    ("accountplus", 103): KEY_NOT_ALLOWED,
    ("accountplus", 104): KEY_NOT_ALLOWED,
    ("accountplus", 105): KEY_NOT_ALLOWED,
}

#: (codespace, code) → reason, for errors that building and sending again may fix.
_RETRYABLE: dict[tuple[str, int], str] = {
    ("clob", 5001): "the exchange's order rate limit was hit; trying again shortly",
    ("clob", 10): "the order expired before it reached the exchange; trying again",
    ("clob", 11): "the order expiry was too far ahead of the node; trying again",
    ("sdk", 32): "the account sequence changed under us; trying again",
}

#: The same bytes are already in the mempool cache (``tx already in mempool``): not a refusal.
ALREADY_BROADCAST = ("sdk", 19)
#: Answers to a (re-)broadcast meaning "an order with this id exists or existed".
ALREADY_KNOWN = frozenset(
    {
        ("clob", 20),
        ("clob", 24),
        ("clob", 7),
        ("clob", 3005),
        ("clob", 3008),
        ("clob", 3009),
        ("clob", 2004),
    }
)


def is_already_placed(codespace: str, code: int) -> bool:
    """Whether the chain's answer means the same bytes are already pending (``sdk`` 19)."""
    return (codespace, code) == ALREADY_BROADCAST


def error_from_chain(codespace: str, code: int, raw_log: str = "") -> ExchangeError | None:
    """Map the chain's answer to a transaction to the error a caller should handle.

    Args:
        codespace: ABCI codespace of the answer (empty on success).
        code: ABCI code (0 on success).
        raw_log: The chain's raw log; only read to recognise an undercollateralized order,
            and kept on the error for the logs.

    Returns:
        None when the chain accepted the transaction (code 0);
        :class:`AlreadyPlacedError` for ``sdk`` 19 (the same bytes are already in the
        mempool: treat as submitted);
        :class:`RetryableExchangeError` for transient refusals (rate limit, sequence mismatch,
        expiry window);
        :class:`OrderAlreadyKnownError` when an order with this id exists or existed;
        :class:`PermanentExchangeError` otherwise, with a plain-words ``reason``.
    """
    if code == 0:
        return None
    key = (codespace, code)
    if key == ALREADY_BROADCAST:
        return AlreadyPlacedError(code=code, codespace=codespace, raw_log=raw_log)
    retry_reason = _RETRYABLE.get(key)
    if retry_reason is not None:
        return RetryableExchangeError(retry_reason, code=code, codespace=codespace, raw_log=raw_log)
    reason = _PERMANENT.get(key)
    if reason is None:
        reason = (
            NOT_ENOUGH_COLLATERAL
            if "undercollateralized" in raw_log.lower()
            else f"the exchange refused the order ({codespace or 'unknown'} error {code})"
        )
    kind = OrderAlreadyKnownError if key in ALREADY_KNOWN else PermanentExchangeError
    return kind(reason, code=code, codespace=codespace, raw_log=raw_log)
