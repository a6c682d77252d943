"""The alert schema: decoding, normalisation, validation and the dedupe key (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.alerts.schema import (
    Action,
    AlertOrder,
    AlertSchemaError,
    BodyError,
    OrderType,
    TargetPosition,
    decode_body,
    dedupe_key,
    normalise_market,
    parse_alert,
    parse_decimal,
    parse_time,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(AlertSchemaError) as info:
        parse_alert(body)
    return info.value.errors


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


def test_the_native_schema_in_full() -> None:
    alert = parse_alert(
        {
            "passphrase": "secret",
            "market": "BINANCE:ETHUSDT.P",
            "action": "SELL",
            "position": "short",
            "size_usd": "250",
            "order_type": "limit",
            "price": 3100.5,
            "slippage_pct": "0.3",
            "tp_pct": "2",
            "sl_price": "3300",
            "trail_pct": "1",
            "alert_id": "Short-1-2026-05-01T12:00:00Z",
            "time": "2026-05-01T12:00:00Z",
            "strategy": "ema cross",
        }
    )
    assert alert == AlertOrder(
        market="ETH-USD",
        action=Action.SELL,
        position=TargetPosition.SHORT,
        size_usd=Decimal(250),
        order_type=OrderType.LIMIT,
        price=Decimal("3100.5"),
        slippage_pct=Decimal("0.3"),
        tp_pct=Decimal(2),
        sl_price=Decimal(3300),
        trail_pct=Decimal(1),
        alert_id="Short-1-2026-05-01T12:00:00Z",
        time=NOW,
        strategy="ema cross",
    )
    assert "passphrase" not in alert.to_fields()
    assert AlertOrder.from_fields(json.loads(json.dumps(alert.to_fields()))) == alert


def test_the_tradingview_alert_connector_shape() -> None:
    alert = parse_alert(
        {
            "exchange": "dydxv4",
            "strategy": "SOL_USD",
            "market": "SOL_USD",
            "sizeByLeverage": "1.5",
            "reverse": "true",
            "order": "buy",
            "position": "long",
            "price": "150",
            "passphrase": "x",
            "slippagePercentage": "0.05",
            "orderMode": "",
            "minProfit": "0.1",
        }
    )
    assert alert.market == "SOL-USD"
    assert alert.action is Action.BUY
    assert alert.size_pct == Decimal(150)
    assert alert.reverse is True
    assert alert.slippage_pct == Decimal("0.05")
    sized = parse_alert({"market": "SOL_USD", "order": "sell", "sizeUsd": 100, "price": 1})
    assert sized.size_usd == Decimal(100)


def test_every_failing_field_is_listed_at_once() -> None:
    errors = errors_of(
        {
            "market": "BTC-EUR",
            "action": "hold",
            "size": "-1",
            "position": "sideways",
            "time": "soon",
            "sl_pct": "200",
            "typo_field": 1,
        }
    )
    assert set(errors) == {"market", "action", "size", "position", "time", "sl_pct", "typo_field"}
    assert errors["typo_field"] == "unknown field"


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"action": "buy", "size": 1}, "market", "is required"),
        ({"market": "BTCUSD", "size": 1}, "action", "is required"),
        ({"market": "BTCUSD", "action": "buy"}, "size", "is required"),
        ({"market": "BTCUSD", "action": "buy", "size": 1, "size_usd": 5}, "size_usd", "only one"),
        ({"market": "BTCUSD", "action": "buy", "size": 1, "order_type": "limit"}, "price", "limit"),
        ({"market": "BTCUSD", "action": "close", "position": "long"}, "position", "flat"),
        (
            {"market": "BTCUSD", "action": "buy", "size": 1, "tp_pct": 1, "tp_price": 2},
            "tp_price",
            "only one",
        ),
        ({"market": "BTCUSD", "order": "buy", "action": "buy", "size": 1}, "action", "either"),
        ({"market": "BTCUSD", "action": "buy", "size": 1, "alert_id": "a\x00"}, "alert_id", ""),
        ({"market": "BTCUSD", "action": "buy", "size": 1, "strategy": "x" * 65}, "strategy", ""),
        ({"market": "BTCUSD", "action": "buy", "size": 1, "reverse": "yes"}, "reverse", ""),
        ({"market": "BTCUSD", "action": "buy", "size": 1, "slippage_pct": 60}, "slippage_pct", ""),
        ({"market": "BTCUSD", "action": "buy", "size_pct": 2000}, "size_pct", "at most"),
        ({"market": "BTCUSD", "action": "buy", "sizeByLeverage": 20}, "sizeByLeverage", "at most"),
    ],
)
def test_invalid_alerts_name_the_field(body: dict[str, Any], field: str, problem: str) -> None:
    errors = errors_of(body)
    assert field in errors
    assert problem in errors[field]


def test_closing_needs_no_size() -> None:
    assert parse_alert({"market": "BTCUSD", "action": "close"}).size is None
    flat = parse_alert({"market": "BTCUSD", "action": "sell", "position": "flat"})
    assert flat.position is TargetPosition.FLAT


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


def test_the_dedupe_key_is_the_alert_id_or_the_canonical_alert() -> None:
    base = {"market": "BTCUSD", "action": "buy", "size": "1", "time": "2026-05-01T12:00:00Z"}
    with_id = parse_alert({**base, "alert_id": "L-1"})
    assert dedupe_key(with_id, received_at=NOW, window_seconds=60) == ("id:L-1", "L-1")
    one = dedupe_key(parse_alert(base), received_at=NOW, window_seconds=60)
    spelled = dedupe_key(
        parse_alert({**base, "market": "BINANCE:BTCUSDT.P", "size": 1.0}),
        received_at=NOW,
        window_seconds=60,
    )
    assert one[0].startswith("sha256:")
    assert one[1] is None
    # 1.0 and "1" differ as decimals: a different message, a different key.
    assert spelled[0] != one[0]
    same = dedupe_key(
        parse_alert({**base, "market": "BINANCE:BTCUSDT.P"}), received_at=NOW, window_seconds=60
    )
    assert same == one
    later = dedupe_key(
        parse_alert({**base, "time": "2026-05-01T12:00:01Z"}), received_at=NOW, window_seconds=60
    )
    assert later != one


def test_without_time_identical_alerts_are_duplicates_only_within_the_window() -> None:
    alert = parse_alert({"market": "SOL_USD", "order": "buy", "size": "10"})
    first = dedupe_key(alert, received_at=NOW, window_seconds=60)
    assert dedupe_key(alert, received_at=NOW + timedelta(seconds=30), window_seconds=60) == first
    assert dedupe_key(alert, received_at=NOW + timedelta(seconds=90), window_seconds=60) != first


@given(
    st.dictionaries(
        st.sampled_from(["market", "action", "size", "price", "time", "alert_id", "order"])
        | st.text(max_size=8),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.decimals()
        | st.text(max_size=20)
        | st.lists(st.integers(), max_size=2),
        max_size=8,
    )
)
def test_parse_alert_raises_only_schema_errors(body: dict[str, Any]) -> None:
    errors: dict[str, str] = {}
    try:
        alert = parse_alert(body)
    except AlertSchemaError as exc:
        errors = exc.errors
    if errors:
        assert all(name.isprintable() and problem for name, problem in errors.items())
    else:
        json.dumps(alert.to_fields())
        assert dedupe_key(alert, received_at=NOW, window_seconds=60)[0]
