"""The dYdX chain's (codespace, code, raw_log) mapped onto the venue-neutral error tree."""

from __future__ import annotations

import pytest

from core.exchange.dydx.errors import (
    ALREADY_KNOWN,
    block_failure,
    error_from_chain,
    is_already_placed,
)
from core.exchange.errors import (
    AlreadyPlacedError,
    OrderAlreadyKnownError,
    PermanentExchangeError,
    RetryableExchangeError,
    StaleSignatureError,
)
from doubles.dydx.state import (
    ERR_BLOCK_RATE_LIMIT_EXCEEDED,
    ERR_INVALID_REPLACEMENT,
    ERR_ORDER_FULLY_FILLED,
    ERR_ORDER_IS_CANCELED,
    ERR_STATEFUL_ORDER_ALREADY_EXISTS,
    ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED,
    ChainError,
)


def test_success_is_no_error() -> None:
    assert error_from_chain("", 0, "") is None


@pytest.mark.parametrize(
    ("chain_error", "words"),
    [
        (ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED, "not enough free collateral"),
        (ERR_INVALID_REPLACEMENT, "already open with a later or equal expiry"),
        (ERR_ORDER_FULLY_FILLED, "already fully filled"),
        (ERR_ORDER_IS_CANCELED, "already cancelled"),
        (ERR_STATEFUL_ORDER_ALREADY_EXISTS, "already open on the exchange"),
    ],
)
def test_permanent_clob_errors_of_the_double(chain_error: ChainError, words: str) -> None:
    result = chain_error.result("detail")
    error = error_from_chain(result.codespace, result.code, result.log)
    assert isinstance(error, PermanentExchangeError)
    assert not error.retryable
    assert (error.codespace, error.code) == (chain_error.codespace, chain_error.code)
    assert words in error.reason
    assert str(error) == error.reason
    assert error.raw_log == result.log


@pytest.mark.parametrize(
    ("codespace", "code"),
    [("clob", 2), ("clob", 4), ("clob", 6), ("clob", 12), ("clob", 2001), ("clob", 3006),
     ("clob", 10001), ("subaccounts", 102)],
)  # fmt: skip
def test_other_known_codes_are_permanent_with_plain_words(codespace: str, code: int) -> None:
    error = error_from_chain(codespace, code, "")
    assert isinstance(error, PermanentExchangeError)
    assert "error" not in error.reason  # a real sentence, not the generic fallback


def test_rate_limit_is_retryable() -> None:
    result = ERR_BLOCK_RATE_LIMIT_EXCEEDED.result("Rate of 3 exceeds …")
    error = error_from_chain(result.codespace, result.code, result.log)
    assert isinstance(error, RetryableExchangeError)
    assert error.retryable
    assert (error.codespace, error.code) == ("clob", 5001)


@pytest.mark.parametrize(("codespace", "code"), [("sdk", 32), ("clob", 10), ("clob", 11)])
def test_transient_codes_are_retryable(codespace: str, code: int) -> None:
    error = error_from_chain(
        codespace, code, "account sequence mismatch, expected 8, got 7: incorrect account sequence"
    )
    assert isinstance(error, RetryableExchangeError)
    assert (error.codespace, error.code) == (codespace, code)


@pytest.mark.parametrize(
    "raw_log",
    [
        "timestamp nonce 1767225600000 not within valid time window: incorrect account sequence",
        "timestamp nonce 1767225600000 rejected: incorrect account sequence",
    ],
)
def test_a_timestamp_nonce_refusal_means_these_bytes_can_never_land(raw_log: str) -> None:
    error = error_from_chain("sdk", 32, raw_log)
    # Not "send the same bytes again": sign anew (after asking whether they landed).
    assert isinstance(error, StaleSignatureError)
    assert (error.codespace, error.code, error.raw_log) == ("sdk", 32, raw_log)
    assert "signing again" in error.reason


@pytest.mark.parametrize(
    ("codespace", "code"), [("sdk", 4), ("accountplus", 100), ("accountplus", 1)]
)
def test_revoked_key_says_use_slash_key(codespace: str, code: int) -> None:
    error = error_from_chain(codespace, code, "signature verification failed")
    assert isinstance(error, PermanentExchangeError)
    assert "the API trading key is no longer authorised" in error.reason
    assert "/key" in error.reason


def test_key_without_permission_for_the_market() -> None:
    error = error_from_chain("accountplus", 102, "Clob pair id verification failed")
    assert isinstance(error, PermanentExchangeError)
    assert "not allowed" in error.reason
    assert "/key" in error.reason


def test_tx_already_in_mempool_is_a_distinct_outcome() -> None:
    error = error_from_chain("sdk", 19, "")
    assert isinstance(error, AlreadyPlacedError)
    assert not isinstance(error, PermanentExchangeError | RetryableExchangeError)
    assert not error.retryable
    assert (error.codespace, error.code) == ("sdk", 19)
    assert is_already_placed("sdk", 19)
    assert not is_already_placed("clob", 19)
    assert not is_already_placed("", 0)


@pytest.mark.parametrize(
    ("codespace", "code"),
    [("clob", 20), ("clob", 24), ("clob", 7), ("clob", 3005), ("clob", 3008), ("clob", 3009),
     ("clob", 2004)],
)  # fmt: skip
def test_an_order_id_the_chain_knows_is_already_known(codespace: str, code: int) -> None:
    error = error_from_chain(codespace, code, "")
    assert isinstance(error, OrderAlreadyKnownError)
    assert isinstance(error, PermanentExchangeError)  # still a refusal of the new send
    assert not error.retryable
    assert (error.codespace, error.code) == (codespace, code)
    assert "error" not in error.reason  # the same plain words as before


def test_only_the_already_known_codes_are_already_known() -> None:
    assert len(ALREADY_KNOWN) == 7
    for codespace, code in [("clob", 2), ("clob", 3006), ("clob", 3007), ("sdk", 4)]:
        error = error_from_chain(codespace, code, "")
        assert isinstance(error, PermanentExchangeError)
        assert not isinstance(error, OrderAlreadyKnownError)


def test_unknown_code_is_permanent_and_undercollateralized_is_recognised() -> None:
    generic = error_from_chain("perpetuals", 77, "dydx1secretaddress went wrong")
    assert isinstance(generic, PermanentExchangeError)
    assert generic.reason == "the exchange refused the order (perpetuals error 77)"
    assert "dydx1" not in str(generic)  # the raw log stays out of the message

    collateral = error_from_chain("clob", 4242, "result (NewlyUndercollateralized)")
    assert isinstance(collateral, PermanentExchangeError)
    assert "not enough free collateral" in collateral.reason


def test_a_block_failure_is_final_unless_only_the_nonce_was_refused() -> None:
    log = (
        "failed to execute message; message index: 0: PlaceStatefulOrder: order (…), result "
        "(NewlyUndercollateralized): Stateful order collateralization check failed"
    )
    failed = block_failure("clob", 3007, log)
    assert isinstance(failed, PermanentExchangeError)
    assert (failed.codespace, failed.code, failed.raw_log) == ("clob", 3007, log)
    assert "not enough free collateral" in failed.reason
    # A code retryable at CheckTx cannot be retried once a block executed the bytes.
    assert isinstance(block_failure("clob", 5001, "rate"), PermanentExchangeError)
    stale = block_failure("sdk", 32, "timestamp nonce 1 rejected: incorrect account sequence")
    assert isinstance(stale, StaleSignatureError)
