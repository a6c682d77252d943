"""What the demo page makes of the bot's /webhook answer and of an alert before it fires."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.services.webhooks import alert_template
from demo.chat import demo_alert_message, fill_placeholders, market_of

PRICES = {"BTC-USD": Decimal(90000), "ETH-USD": Decimal(3000)}


@pytest.mark.parametrize(
    ("market", "expected"),
    [
        ("ETH-USD", "ETH-USD"),
        ("ETHUSD", "ETH-USD"),
        ("BINANCE:ETHUSDT.P", "ETH-USD"),
        ("btc_usd", "BTC-USD"),
        ("DOGEUSDT", None),
        ("", None),
    ],
)
def test_the_market_an_alert_names(market: str, expected: str | None) -> None:
    assert market_of(json.dumps({"market": market}), PRICES) == expected


def test_no_market_field_leaves_close_as_it_is() -> None:
    assert fill_placeholders('{"price": "{{close}}"}', PRICES) == '{"price": "{{close}}"}'


def test_timenow_and_close_are_filled_as_tradingview_fills_them() -> None:
    at = datetime(2026, 12, 7, 13, 0, 5, tzinfo=UTC)
    body = '{"market": "ETHUSD", "price": "{{close}}", "time": "{{timenow}}"}'
    assert json.loads(fill_placeholders(body, PRICES, at)) == {
        "market": "ETHUSD",
        "price": "3000",
        "time": "2026-12-07T13:00:05Z",
    }


def test_the_bots_template_becomes_a_first_long_entry_with_protection() -> None:
    message = json.loads(demo_alert_message(alert_template("secret-passphrase")))
    assert message == {
        "passphrase": "secret-passphrase",
        "market": "ETH-USD",
        "action": "buy",
        "position": "long",
        "size": "0.1",
        "price": "{{close}}",
        "alert_id": "Long-{{timenow}}",
        "time": "{{timenow}}",
        "tp_pct": "2",
        "sl_pct": "1",
    }


def test_a_template_that_is_not_a_json_object_is_left_alone() -> None:
    assert demo_alert_message("buy {{ticker}}") == "buy {{ticker}}"
    assert demo_alert_message("[1, 2]") == "[1, 2]"
