"""The venue-neutral port: the error tree, order requests, results and capabilities."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.domain.states import OrderSide
from core.exchange.errors import (
    AlreadyPlacedError,
    ExchangeError,
    ExchangeUnavailableError,
    OrderAlreadyKnownError,
    PermanentExchangeError,
    RetryableExchangeError,
    UnknownOutcomeError,
)
from core.exchange.orders import (
    CancelResult,
    OrderFlags,
    OrderKind,
    OrderRequest,
    PlaceResult,
    TimeInForce,
)
from core.exchange.port import VenueCapabilities


def test_error_tree() -> None:
    timeout = UnknownOutcomeError(tx_hash="ABCD")
    assert isinstance(timeout, ExchangeError)
    assert not timeout.retryable
    assert timeout.tx_hash == "ABCD"
    assert "may or may not exist" in str(timeout)
    assert ExchangeUnavailableError("x").retryable
    assert issubclass(RetryableExchangeError, ExchangeError)
    assert issubclass(PermanentExchangeError, ExchangeError)
    assert issubclass(OrderAlreadyKnownError, PermanentExchangeError)
    assert not issubclass(AlreadyPlacedError, PermanentExchangeError | RetryableExchangeError)
    known = OrderAlreadyKnownError("this order is already open", code=3005, codespace="clob")
    assert (known.reason, known.code, known.codespace) == (
        "this order is already open",
        3005,
        "clob",
    )
    assert not known.retryable
    assert PermanentExchangeError("plain words").code == 0  # a venue code is optional
    assert not AlreadyPlacedError().retryable


def test_results_say_whether_the_same_bytes_were_already_placed() -> None:
    fresh = PlaceResult(tx_hash="AB", code=0, codespace="", raw_log="", tx_bytes=b"x")
    assert (fresh.accepted, fresh.already_placed) == (True, False)
    again = PlaceResult(
        tx_hash="AB", code=19, codespace="sdk", raw_log="", tx_bytes=b"x", already_placed=True
    )
    assert (again.accepted, again.already_placed) == (False, True)
    cancel = CancelResult(tx_hash="CD", code=0, codespace="", raw_log="", tx_bytes=b"y")
    assert (cancel.accepted, cancel.already_placed) == (True, False)


# --------------------------------------------------------------------- capabilities


def test_short_term_good_til_block_keeps_the_margin_free() -> None:
    caps = VenueCapabilities(short_term_window=40, short_term_safety_margin=10)
    assert caps.short_term_good_til_block(1000) == 1030
    assert caps.short_term_good_til_block(0) == 30
    assert VenueCapabilities(short_term_window=20).short_term_good_til_block(7) == 27
    with pytest.raises(ValueError, match="negative"):
        caps.short_term_good_til_block(-1)


@pytest.mark.parametrize(("window", "margin"), [(40, 40), (40, -1), (0, 0), (10, 11)])
def test_capabilities_refuse_a_window_without_room(window: int, margin: int) -> None:
    with pytest.raises(ValueError, match="margin"):
        VenueCapabilities(short_term_window=window, short_term_safety_margin=margin)


def test_capabilities_are_frozen_data() -> None:
    caps = VenueCapabilities(short_term_window=40, short_term_safety_margin=10)
    assert caps == VenueCapabilities(40, 10)
    with pytest.raises(AttributeError):
        caps.short_term_window = 20  # type: ignore[misc]


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
