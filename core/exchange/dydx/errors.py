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
    StaleSignatureError,
)
from core.texts import exchange as texts

#: (codespace, code) → reason, for errors that sending again cannot fix. The codes are the
#: registered ones of v4-chain ``x/clob/types/errors.go``, ``x/subaccounts/types/errors.go``,
#: ``x/accountplus/types/errors.go`` and cosmos-sdk ``types/errors``.
_PERMANENT: dict[tuple[str, int], str] = {
    ("clob", 2): texts.ORDER_GONE,
    ("clob", 3): texts.INVALID_SIDE,
    ("clob", 4): texts.INVALID_SIZE,
    ("clob", 5): texts.NO_EXPIRY_BLOCK,
    ("clob", 6): texts.INVALID_PRICE,
    ("clob", 7): texts.ALREADY_CANCELLED,
    ("clob", 8): texts.MARKET_NOT_LISTED,
    ("clob", 9): texts.CANCEL_PENDING,
    ("clob", 12): texts.OFF_GRID,
    ("clob", 17): texts.TOO_MANY_ORDERS_ON_SIDE,
    ("clob", 20): texts.SAME_ID_OPEN,
    ("clob", 24): texts.ALREADY_FULLY_FILLED,
    ("clob", 34): texts.MARKET_NOT_ACCEPTING,
    ("clob", 2000): texts.FOK_NOT_FILLED,
    ("clob", 2001): texts.REDUCE_ONLY_WOULD_INCREASE,
    ("clob", 2002): texts.REDUCE_ONLY_WOULD_FLIP,
    ("clob", 2003): texts.POST_ONLY_WOULD_CROSS,
    ("clob", 2004): texts.FILLED_REST_CANCELLED,
    ("clob", 3000): texts.UNSUPPORTED_KIND,
    ("clob", 3001): texts.NO_EXPIRY_TIME,
    ("clob", 3002): texts.RESTING_NOT_IMMEDIATE,
    ("clob", 3003): texts.EXPIRY_PASSED,
    ("clob", 3004): texts.EXPIRY_TOO_FAR,
    ("clob", 3005): texts.ALREADY_OPEN,
    ("clob", 3006): texts.ORDER_GONE,
    ("clob", 3007): texts.NOT_ENOUGH_COLLATERAL,
    ("clob", 3008): texts.CANCELLED_BEFORE,
    ("clob", 3009): texts.REMOVED_BEFORE,
    ("clob", 6000): texts.INVALID_CONDITION_TYPE,
    ("clob", 6001): texts.INVALID_TRIGGER_PRICE,
    ("clob", 9003): texts.REDUCE_ONLY_NEEDS_IOC,
    ("clob", 10001): texts.TOO_MANY_ORDERS_FOR_EQUITY,
    ("subaccounts", 102): texts.NOT_ENOUGH_COLLATERAL,
    ("sdk", 2): texts.UNREADABLE_TRANSACTION,
    ("sdk", 4): texts.KEY_NOT_AUTHORISED,
    ("sdk", 5): texts.NOT_ENOUGH_FUNDS_FOR_FEES,
    ("sdk", 13): texts.FEE_TOO_LOW,
    ("accountplus", 1): texts.KEY_NOT_AUTHORISED,
    ("accountplus", 100): texts.KEY_NOT_AUTHORISED,
    ("accountplus", 101): texts.KEY_NOT_ALLOWED,
    ("accountplus", 102): texts.KEY_NOT_ALLOWED,
    ("accountplus", 103): texts.KEY_NOT_ALLOWED,
    ("accountplus", 104): texts.KEY_NOT_ALLOWED,
    ("accountplus", 105): texts.KEY_NOT_ALLOWED,
}

#: (codespace, code) → reason, for errors that building and sending again may fix.
_RETRYABLE: dict[tuple[str, int], str] = {
    ("clob", 5001): texts.RATE_LIMITED,
    ("clob", 10): texts.EXPIRED_IN_TRANSIT,
    ("clob", 11): texts.EXPIRY_AHEAD_OF_NODE,
    ("sdk", 32): texts.SEQUENCE_CHANGED,
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


#: Words of ``x/accountplus`` ``ProcessTimestampNonce`` in an ``sdk`` 32 refusal: the timestamp
#: nonce is out of the ±30 s window ("not within valid time window") or already used or
#: ejected ("rejected"). Either way these signed bytes can never pass the ante handler again.
_TIMESTAMP_NONCE_REFUSAL = "timestamp nonce"


def is_already_placed(codespace: str, code: int) -> bool:
    """Whether the chain's answer means the same bytes are already pending (``sdk`` 19)."""
    return (codespace, code) == ALREADY_BROADCAST


def error_from_chain(codespace: str, code: int, raw_log: str = "") -> ExchangeError | None:
    """Map the chain's answer to a transaction to the error a caller should handle.

    Args:
        codespace: ABCI codespace of the answer (empty on success).
        code: ABCI code (0 on success).
        raw_log: The chain's raw log; only read to recognise an undercollateralized order
            and a timestamp-nonce refusal, and kept on the error for the logs.

    Returns:
        None when the chain accepted the transaction (code 0);
        :class:`AlreadyPlacedError` for ``sdk`` 19 (the same bytes are already in the
        mempool: treat as submitted);
        :class:`StaleSignatureError` for a timestamp nonce out of its window or already used
        (``sdk`` 32 "timestamp nonce …": these bytes can never land, sign again);
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
    if key == ("sdk", 32) and _TIMESTAMP_NONCE_REFUSAL in raw_log.lower():
        return StaleSignatureError(
            texts.STALE_SIGNATURE, code=code, codespace=codespace, raw_log=raw_log
        )
    retry_reason = _RETRYABLE.get(key)
    if retry_reason is not None:
        return RetryableExchangeError(retry_reason, code=code, codespace=codespace, raw_log=raw_log)
    reason = _PERMANENT.get(key)
    if reason is None:
        reason = (
            texts.NOT_ENOUGH_COLLATERAL
            if "undercollateralized" in raw_log.lower()
            else texts.refused_with_code(codespace, code)
        )
    kind = OrderAlreadyKnownError if key in ALREADY_KNOWN else PermanentExchangeError
    return kind(reason, code=code, codespace=codespace, raw_log=raw_log)


def block_failure(
    codespace: str, code: int, raw_log: str
) -> PermanentExchangeError | StaleSignatureError:
    """Map a transaction's failed block result (GetTx) to the error a caller should handle.

    A stateful order can pass CheckTx and fail in its block (e.g. ``clob`` 3007 when
    collateral changed in between): nothing of it took effect.

    Returns:
        :class:`StaleSignatureError` when the block refused its timestamp nonce (sign
        again), else a :class:`PermanentExchangeError` with the chain's reason.
    """
    error = error_from_chain(codespace, code, raw_log)
    if isinstance(error, PermanentExchangeError | StaleSignatureError):
        return error
    reason = getattr(error, "reason", "") or texts.refused_with_code(codespace, code)
    return PermanentExchangeError(reason, code=code, codespace=codespace, raw_log=raw_log)
