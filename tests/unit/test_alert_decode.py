"""Decoding an alert's body and its values: markets, numbers, times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.alerts.decode import BodyError, decode_body, normalise_market, parse_decimal, parse_time

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("symbol", "market"),
    [
        ("BTC-USD", "BTC-USD"),
        ("BTCUSD", "BTC-USD"),
        ("BTCUSDT", "BTC-USD"),
        ("BTC_USD", "BTC-USD"),
        ("BINANCE:BTCUSDT.P", "BTC-USD"),
        ("btc/usdt", "BTC-USD"),
        ("ETHUSDC", "ETH-USD"),
        ("BYBIT:SOLUSDT.PERP", "SOL-USD"),
        ("1INCHUSD", "1INCH-USD"),
        (" eth-perp ", "ETH-USD"),
    ],
)
def test_markets_normalise_to_dydx_names(symbol: str, market: str) -> None:
    assert normalise_market(symbol) == market


@pytest.mark.parametrize("symbol", ["", "BTC", "BTC-EUR", "BTCEUR", "-USD", "BTC USD", 5, None])
def test_unrecognisable_markets_are_refused(symbol: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        normalise_market(symbol)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.01", Decimal("0.01")), (5, Decimal(5)), (Decimal("1.5"), Decimal("1.5")), (" 2 ", 2)],
)
def test_numbers_arrive_as_strings_or_numbers(value: Any, expected: Decimal) -> None:
    assert parse_decimal(value, maximum=Decimal(100)) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("NaN", "must be a number"),
        ("inf", "must be a number"),
        (Decimal("NaN"), "must be a finite number"),
        (Decimal("Infinity"), "must be a finite number"),
        ("-1", "must not be negative"),
        (-1, "must not be negative"),
        ("0", "must be greater than zero"),
        ("101", "must be at most 100"),
        ("1e9", "must be at most 100"),
        (10**40, "must be at most 100"),
        (True, "must be a number"),
        ("1_000", "must be a number"),
        ("0x10", "must be a number"),
        ("", "must be a number"),
        ([1], "must be a number"),
        ("0." + "0" * 18 + "1", "decimal places"),
    ],
)
def test_bad_numbers_are_refused(value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_decimal(value, maximum=Decimal(100))


def test_times_from_timenow_and_epochs() -> None:
    assert parse_time("2026-05-01T12:00:00Z") == NOW
    assert parse_time("2026-05-01T14:00:00+02:00") == NOW
    assert parse_time("2026-05-01T12:00:00") == NOW  # naive means UTC
    assert parse_time(int(NOW.timestamp())) == NOW
    assert parse_time(int(NOW.timestamp()) * 1000) == NOW
    for bad in ("yesterday", "1999-01-01T00:00:00Z", True, [], "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError, match="must be a time"):
            parse_time(bad)


def test_decode_body_whatever_the_bytes() -> None:
    assert decode_body(b'{"size": 0.1}') == {"size": Decimal("0.1")}
    for raw, reason in [
        (b"buy", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"\xff", "UTF-8"),
        (b"  ", "empty"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b"[" * 4000 + b"]" * 4000, "not valid JSON"),
    ]:
        with pytest.raises(BodyError, match=reason):
            decode_body(raw)
