"""The alert schema: native and TAC shapes, validation by field, normalisation (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.alerts.dedupe import dedupe_key
from core.alerts.schema import (
    Action,
    AlertOrder,
    AlertSchemaError,
    OrderType,
    TargetPosition,
    parse_alert,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(AlertSchemaError) as info:
        parse_alert(body)
    return info.value.errors


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


def test_breakeven_is_parsed_bounded_and_needs_a_stop() -> None:
    base = {"market": "ETHUSD", "action": "buy", "size": "0.1"}
    alert = parse_alert({**base, "trail_pct": "1", "be_trigger_pct": "0.5"})
    assert (alert.trail_pct, alert.be_trigger_pct) == (Decimal(1), Decimal("0.5"))
    assert AlertOrder.from_fields(alert.to_fields()) == alert
    assert parse_alert({**base, "sl_pct": 2, "be_trigger_pct": 1}).be_trigger_pct == Decimal(1)
    assert "stop-loss" in errors_of({**base, "be_trigger_pct": "1"})["be_trigger_pct"]
    assert "be_trigger_pct" in errors_of({**base, "sl_pct": "1", "be_trigger_pct": "101"})
    assert "be_trigger_pct" in errors_of({**base, "sl_pct": "1", "be_trigger_pct": "-1"})
