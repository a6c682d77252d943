"""The chain's (codespace, code, raw_log) mapped to typed exchange errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.domain.states import OrderSide
from core.exchange.errors import (
    AlreadyBroadcastError,
    ExchangeError,
    ExchangeUnavailableError,
    PermanentExchangeError,
    RetryableExchangeError,
    UnknownOutcomeError,
    error_from_chain,
)
from core.exchange.port import OrderFlags, OrderKind, OrderRequest, PlaceResult, TimeInForce
from tests.doubles.dydx.state import (
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
    assert isinstance(error, AlreadyBroadcastError)
    assert not isinstance(error, PermanentExchangeError | RetryableExchangeError)
    assert not error.retryable
    result = PlaceResult(tx_hash="AB", code=19, codespace="sdk", raw_log="", tx_bytes=b"x")
    assert result.already_broadcast
    assert not result.accepted


def test_unknown_code_is_permanent_and_undercollateralized_is_recognised() -> None:
    generic = error_from_chain("perpetuals", 77, "dydx1secretaddress went wrong")
    assert isinstance(generic, PermanentExchangeError)
    assert generic.reason == "the exchange refused the order (perpetuals error 77)"
    assert "dydx1" not in str(generic)  # the raw log stays out of the message

    collateral = error_from_chain("clob", 4242, "result (NewlyUndercollateralized)")
    assert isinstance(collateral, PermanentExchangeError)
    assert "not enough free collateral" in collateral.reason


def test_error_tree() -> None:
    timeout = UnknownOutcomeError(tx_hash="ABCD")
    assert isinstance(timeout, ExchangeError)
    assert not timeout.retryable
    assert timeout.tx_hash == "ABCD"
    assert "may or may not exist" in str(timeout)
    assert ExchangeUnavailableError("x").retryable
    assert issubclass(RetryableExchangeError, ExchangeError)
    assert issubclass(PermanentExchangeError, ExchangeError)


# --------------------------------------------------------------------- port DTO validation

_GTBT = datetime(2030, 1, 1, tzinfo=UTC)


def test_order_request_flags() -> None:
    market = OrderRequest(
        market="ETH-USD", side=OrderSide.BUY, size=Decimal("0.01"), kind=OrderKind.MARKET,
        price=Decimal(3150), client_id=1, time_in_force=TimeInForce.IOC, good_til_block=1030,
    )  # fmt: skip
    assert market.flags is OrderFlags.SHORT_TERM
    stop = OrderRequest(
        market="ETH-USD", side=OrderSide.SELL, size=Decimal("0.01"), kind=OrderKind.STOP,
        price=Decimal(2700), trigger_price=Decimal(2800), client_id=2, reduce_only=True,
        time_in_force=TimeInForce.IOC, good_til_block_time=_GTBT,
    )  # fmt: skip
    assert stop.flags is OrderFlags.CONDITIONAL
    limit = OrderRequest(
        market="ETH-USD", side=OrderSide.BUY, size=Decimal("0.01"), kind=OrderKind.LIMIT,
        price=Decimal(2900), client_id=3, good_til_block_time=_GTBT,
    )  # fmt: skip
    assert limit.flags is OrderFlags.LONG_TERM


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": Decimal(0)}, "size must be positive"),
        ({"client_id": 2**32}, "uint32"),
        ({"trigger_price": Decimal(1)}, "trigger price is required"),  # LIMIT has no trigger
        ({"good_til_block": 5}, "exactly one of"),
        ({"reduce_only": True}, "must be IOC"),
        ({"good_til_block_time": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
def test_order_request_refuses_contradictions(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "market": "ETH-USD", "side": OrderSide.BUY, "size": Decimal("0.01"),
        "kind": OrderKind.LIMIT, "price": Decimal(2900), "client_id": 3,
        "good_til_block_time": _GTBT,
    }  # fmt: skip
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        OrderRequest(**fields)  # type: ignore[arg-type]
