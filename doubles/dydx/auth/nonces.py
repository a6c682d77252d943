"""Timestamp nonces (``x/accountplus/keeper/timestampnonce.go``)."""

from __future__ import annotations

from dataclasses import dataclass

from doubles.dydx.auth.constants import (
    MAX_TIME_IN_FUTURE_MS,
    MAX_TIME_IN_PAST_MS,
    MAX_TIMESTAMP_NONCES,
    TIMESTAMP_NONCE_CUTOFF,
)
from doubles.dydx.auth.errors import SDK, ChainError

# --- timestamp nonces -------------------------------------------------------------------------


@dataclass(frozen=True)
class TimestampNonceState:
    """``TimestampNonceDetails`` of one account.

    Attributes:
        nonces: The accepted timestamp nonces still tracked (at most 20).
        max_ejected: The largest nonce ejected so far (nonces ≤ it are refused).
        found: Whether the account already had accountplus state.
    """

    nonces: tuple[int, ...] = ()
    max_ejected: int = 0
    found: bool = False


def is_timestamp_nonce(sequence: int) -> bool:
    """A sequence ≥ 2^40 is a timestamp nonce in milliseconds."""
    return sequence >= TIMESTAMP_NONCE_CUTOFF


def process_timestamp_nonce(
    state: TimestampNonceState, ts_nonce: int, block_time_ms: int
) -> TimestampNonceState:
    """``ProcessTimestampNonce``: accept a nonce and return the account's new nonce state.

    Args:
        state: Current state of the account.
        ts_nonce: The signer info's sequence (≥ 2^40).
        block_time_ms: Current block time in unix milliseconds.

    Returns:
        The updated state.

    Raises:
        ChainError: ``sdk`` 32 when outside ±30 s of block time, reused, or not larger than
            the smallest of the last 20.
    """
    if not (
        block_time_ms - MAX_TIME_IN_PAST_MS <= ts_nonce <= block_time_ms + MAX_TIME_IN_FUTURE_MS
    ):
        raise ChainError.registered(
            SDK, 32, f"timestamp nonce {ts_nonce} not within valid time window"
        )
    if not state.found:
        return TimestampNonceState((ts_nonce,), 0, True)
    # EjectStaleTimestampNonces.
    oldest_allowed = block_time_ms - MAX_TIME_IN_PAST_MS
    nonces = [n for n in state.nonces if n >= oldest_allowed]
    max_ejected = max([state.max_ejected, *(n for n in state.nonces if n < oldest_allowed)])
    # AttemptTimestampNonceUpdate.
    rejected = ChainError.registered(SDK, 32, f"timestamp nonce {ts_nonce} rejected")
    if ts_nonce <= max_ejected or ts_nonce in nonces:
        raise rejected
    if len(nonces) < MAX_TIMESTAMP_NONCES:
        return TimestampNonceState((*nonces, ts_nonce), max_ejected, True)
    min_index = min(range(len(nonces)), key=lambda i: (nonces[i], i))
    if ts_nonce <= nonces[min_index]:
        raise rejected
    max_ejected = nonces[min_index]
    nonces[min_index] = ts_nonce
    return TimestampNonceState(tuple(nonces), max_ejected, True)
