"""What /settings accepts as typed (or preset) values, and what /close and /why read."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from core.domain.preferences import FlipMode, PreferenceField, SizeKind
from core.services.control.preference_input import (
    PreferenceInputError,
    parse_market,
    parse_preference,
)
from core.services.control.timeline import parse_alert_reference

F = PreferenceField


@pytest.mark.parametrize(
    ("field", "text", "changes"),
    [
        (F.SIZE, "$100", {"default_size_kind": SizeKind.USD, "default_size_value": Decimal(100)}),
        (F.SIZE, "250 usdc", {"default_size_kind": SizeKind.USD, "default_size_value": 250}),
        (F.SIZE, "1.5k", {"default_size_kind": SizeKind.USD, "default_size_value": 1500}),
        (F.SIZE, "5%", {"default_size_kind": SizeKind.PCT, "default_size_value": 5}),
        (
            F.SIZE,
            "0.01 ETH",
            {"default_size_kind": SizeKind.BASE, "default_size_value": Decimal("0.01")},
        ),
        (F.SLIPPAGE, "0.25%", {"slippage_pct": Decimal("0.25")}),
        (F.LEVERAGE, "3x", {"max_leverage": 3}),
        (F.NOTIONAL, "$12,500", {"max_notional_usd": 12500}),
        (F.POSITIONS, "10", {"max_open_positions": 10}),
        (F.LOSS_LIMIT, "No limit", {"daily_loss_limit_usd": None}),
        (F.LOSS_LIMIT, "300", {"daily_loss_limit_usd": 300}),
        (F.MARKETS, "all", {"allowed_markets": ()}),
        (
            F.MARKETS,
            "btc; ETHUSDT,  BINANCE:SOLUSDT.P",
            {"allowed_markets": ("BTC-USD", "ETH-USD", "SOL-USD")},
        ),
        (F.FLIP, "Reduce", {"flip": FlipMode.REDUCE}),
        (F.PAPER, "on", {"paper": True}),
        (F.PAPER, "live", {"paper": False}),
        (F.TIMEZONE, "america/new_york", {"timezone": "America/New_York"}),
        (F.TIMEZONE, "UTC+5", {"timezone": "Etc/GMT-5"}),
        (F.TIMEZONE, "gmt-3", {"timezone": "Etc/GMT+3"}),
        (F.TIMEZONE, "utc", {"timezone": "UTC"}),
        (F.DIGEST, "8", {"digest_hour": 8}),
        (F.DIGEST, "18:00", {"digest_hour": 18}),
        (F.DIGEST, "07h", {"digest_hour": 7}),
        (F.DIGEST, "0", {"digest_hour": 0}),
        (F.DIGEST, "Off", {"digest_hour": None}),
    ],
)
def test_accepted_values(field: PreferenceField, text: str, changes: dict[str, Any]) -> None:
    assert parse_preference(field, text) == changes


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        (F.SIZE, "lots", "Default size: send e.g."),
        (F.SIZE, "0", "above 0"),
        (F.SIZE, "2000%", "at most 1,000% of equity"),
        (F.SLIPPAGE, "6", "at most 5%"),
        (F.SLIPPAGE, "-1", "send a number"),
        (F.LEVERAGE, "25x", "at most 20x"),
        (F.NOTIONAL, "1e9", "send a number"),
        (F.NOTIONAL, "9" * 40, "too large"),
        (F.NOTIONAL, "0.123456789", "at most 8 decimal places"),
        (F.POSITIONS, "0", "from 1 to 50"),
        (F.POSITIONS, "51", "from 1 to 50"),
        (F.MARKETS, "BTC-EUR", "BTC-EUR is not a market"),
        (F.MARKETS, " ".join(f"M{i}" for i in range(41)), "at most 40 markets"),
        (F.FLIP, "sometimes", "flip or reduce"),
        (F.PAPER, "maybe", "on or off"),
        (F.TIMEZONE, "Berlin", "Europe/Berlin"),
        (F.TIMEZONE, "UTC+15", "-12 to +14"),
        (F.MARKETS, "x" * 401, "too long"),
        (F.DIGEST, "24", "an hour from 0 to 23"),
        (F.DIGEST, "8:30", "an hour from 0 to 23"),
        (F.DIGEST, "morning", "an hour from 0 to 23"),
    ],
)
def test_refused_values_say_what_is_accepted(
    field: PreferenceField, text: str, message: str
) -> None:
    with pytest.raises(PreferenceInputError, match=re.escape(message)):
        parse_preference(field, text)


@pytest.mark.parametrize(
    ("text", "market"),
    [
        ("eth", "ETH-USD"),
        ("BTCUSDT", "BTC-USD"),
        ("sol-usd", "SOL-USD"),
        ("1000PEPE", "1000PEPE-USD"),
    ],
)
def test_markets_as_typed(text: str, market: str) -> None:
    assert parse_market(text) == market


def test_an_alert_reference_is_our_id_or_tradingviews() -> None:
    assert parse_alert_reference("12") == (12, "12")
    assert parse_alert_reference(" #12 ") == (12, "#12")
    assert parse_alert_reference("Long-2026-11-25T10:00:00Z") == (
        None,
        "Long-2026-11-25T10:00:00Z",
    )
    assert parse_alert_reference("9" * 30) == (None, "9" * 30)
