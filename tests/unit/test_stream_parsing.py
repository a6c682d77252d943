"""Parsing the dYdX Indexer WebSocket (socks) messages into venue-neutral events: the real
envelopes, strict fields, and malformed input refused or left out (never guessed at)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.domain.states import OrderSide, PositionSide
from core.exchange.dydx.parsing import MalformedAnswerError
from core.exchange.dydx.stream import SubscribePacer
from core.exchange.dydx.stream_parsing import (
    parse_envelope,
    parse_fill_event,
    parse_initial_orders,
    parse_oracle_prices,
    parse_order_event,
    parse_position_event,
    parse_subaccount_update,
    subaccount_ref,
)
from core.exchange.stream import FillEvent, OrderEvent, PositionEvent, SubaccountRef

OWNER = "dydx1ppwchq3vzmuafvqcwj6uw3ymf6ywvadmgyahq8"
ORDER_ID = "0f3b8b54-6b8c-5d4e-9d1e-3f1a2b3c4d5e"


def order(**overrides: Any) -> dict[str, Any]:
    """An OrderSubaccountMessageContents as socks sends it."""
    data: dict[str, Any] = {
        "id": ORDER_ID,
        "subaccountId": "5a0b7b2c-0000-5000-8000-000000000000",
        "clientId": "42",
        "clobPairId": "1",
        "side": "BUY",
        "size": "0.1",
        "totalFilled": "0.05",
        "price": "2900",
        "type": "LIMIT",
        "status": "OPEN",
        "timeInForce": "GTT",
        "reduceOnly": False,
        "orderFlags": "64",
        "goodTilBlockTime": "2026-01-01T01:00:00.000Z",
        "ticker": "ETH-USD",
    }
    data.update(overrides)
    return data


def fill(**overrides: Any) -> dict[str, Any]:
    """A FillSubaccountMessageContents as socks sends it."""
    data: dict[str, Any] = {
        "id": "a1b2c3d4-0000-5000-8000-000000000001",
        "side": "BUY",
        "liquidity": "MAKER",
        "type": "LIMIT",
        "clobPairId": "1",
        "size": "0.05",
        "price": "2900",
        "quoteAmount": "145",
        "fee": "-0.0145",
        "createdAt": "2026-01-01T00:00:01.123456789Z",
        "createdAtHeight": "120",
        "orderId": ORDER_ID,
        "ticker": "ETH-USD",
        "clientMetadata": "2",
    }
    data.update(overrides)
    return data


def position(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "address": OWNER,
        "subaccountNumber": 0,
        "market": "ETH-USD",
        "side": "SHORT",
        "status": "OPEN",
        "size": "-0.2",
        "entryPrice": "3100.5",
    }
    data.update(overrides)
    return data


def test_every_envelope_type_parses_with_contents_as_a_list() -> None:
    connected = parse_envelope('{"type":"connected","connection_id":"c","message_id":0}')
    assert (connected.type, connected.contents) == ("connected", ())
    data = parse_envelope(
        json.dumps(
            {
                "type": "channel_data",
                "connection_id": "c",
                "message_id": 3,
                "id": f"{OWNER}/0",
                "channel": "v4_subaccounts",
                "version": "2.4.0",
                "contents": {"orders": [order()]},
            }
        )
    )
    assert (data.channel, data.id, len(data.contents)) == ("v4_subaccounts", f"{OWNER}/0", 1)
    batch = parse_envelope(
        json.dumps(
            {
                "type": "channel_batch_data",
                "channel": "v4_markets",
                "contents": [{"oraclePrices": {}}, {"trading": {}}],
            }
        )
    )
    assert (batch.id, len(batch.contents)) == (None, 2)
    error = parse_envelope('{"type":"error","message":"Invalid subscribe message"}')
    assert error.message == "Invalid subscribe message"
    subscribed = parse_envelope('{"type":"subscribed","channel":"v4_markets","contents":null}')
    assert subscribed.contents == ()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"type": "nope"}',
        '{"type": 1}',
        '{"type": "channel_data", "channel": "v4_subaccounts"}',
        '{"type": "channel_data", "channel": "v4_subaccounts", "contents": []}',
        '{"type": "channel_batch_data", "channel": "v4_markets", "contents": {}}',
        '{"type": "channel_batch_data", "channel": "v4_markets", "contents": [1]}',
        '{"type": "channel_data", "contents": {}}',
        '{"type": "channel_data", "channel": 5, "contents": {}}',
        '{"type": "channel_data", "channel": "v4_subaccounts", "id": 7, "contents": {}}',
        '{"type": "error"}',
        '{"type": "channel_data", "channel": "x", "contents": {"a": NaN}}',
    ],
)
def test_a_malformed_envelope_is_refused(text: str) -> None:
    with pytest.raises(MalformedAnswerError):
        parse_envelope(text)


def test_subaccount_ids() -> None:
    assert subaccount_ref(f"{OWNER}/3") == SubaccountRef(OWNER, 3)
    assert SubaccountRef(OWNER, 3).key == f"{OWNER}/3"
    for bad in (None, "", OWNER, f"{OWNER}/-1", f"{OWNER}/1/2", "DYDX1/0", f"{OWNER}/x"):
        with pytest.raises(MalformedAnswerError):
            subaccount_ref(bad)


def test_an_order_update_and_its_fill_name_the_order_by_client_id() -> None:
    known: dict[str, int] = {}
    parsed = parse_subaccount_update(
        {"orders": [order(removalReason=None)], "fills": [fill()], "blockHeight": "120"}, known
    )
    assert not parsed.problems
    order_event, fill_event = parsed.events
    assert order_event == OrderEvent(
        order_id=ORDER_ID,
        client_id=42,
        market="ETH-USD",
        status="OPEN",
        filled_size=Decimal("0.05"),
        size=Decimal("0.1"),
    )
    assert isinstance(fill_event, FillEvent)
    assert fill_event.order_client_id == 42
    assert (fill_event.side, fill_event.size, fill_event.price) == (
        OrderSide.BUY,
        Decimal("0.05"),
        Decimal("2900"),
    )
    assert fill_event.fee == Decimal("-0.0145")
    assert fill_event.at == datetime(2026, 1, 1, 0, 0, 1, 123456, tzinfo=UTC)
    assert fill_event.liquidation is False
    # A later message with only the fill still finds the client id.
    (later,) = parse_subaccount_update({"fills": [fill(id="f2")]}, known).events
    assert isinstance(later, FillEvent)
    assert later.order_client_id == 42


def test_a_partial_order_update_keeps_what_it_has() -> None:
    event = parse_order_event(
        {"id": ORDER_ID, "clientId": 7, "ticker": "BTC-USD", "status": "BEST_EFFORT_CANCELED"}
    )
    assert (event.client_id, event.filled_size, event.size) == (7, None, None)
    canceled = parse_order_event(
        order(status="CANCELED", removalReason="ORDER_REMOVAL_REASON_EXPIRED")
    )
    assert canceled.removal_reason == "ORDER_REMOVAL_REASON_EXPIRED"


@pytest.mark.parametrize(
    "overrides",
    [
        {"clientId": "-1"},
        {"clientId": str(2**32)},
        {"clientId": True},
        {"status": "GONE"},
        {"ticker": ""},
        {"totalFilled": "0.2"},
        {"size": "0"},
        {"totalFilled": "-1"},
        {"removalReason": 5},
        {"id": None},
    ],
)
def test_a_malformed_order_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(MalformedAnswerError):
        parse_order_event(order(**overrides))


def test_a_liquidation_fill_has_no_order() -> None:
    event = parse_fill_event(fill(type="LIQUIDATED", orderId=None, clientMetadata=None), {})
    assert (event.order_id, event.order_client_id, event.liquidation) == (None, None, True)
    assert parse_fill_event(fill(type="DELEVERAGED", orderId=None), {}).liquidation
    # The counterparty side of a liquidation is an ordinary fill of an order.
    assert not parse_fill_event(fill(type="LIQUIDATION"), {}).liquidation


@pytest.mark.parametrize(
    "overrides",
    [
        {"size": "0"},
        {"price": "-1"},
        {"size": 1.5},
        {"fee": "abc"},
        {"type": "MAGIC"},
        {"side": "LONG"},
        {"createdAt": "yesterday"},
        {"createdAt": "2026-01-01T00:00:00+02:00"},
        {"orderId": 5},
        {"id": ""},
    ],
)
def test_a_malformed_fill_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(MalformedAnswerError):
        parse_fill_event(fill(**overrides), {})


def test_positions_open_and_closed() -> None:
    assert parse_position_event(position()) == PositionEvent(
        "ETH-USD", PositionSide.SHORT, Decimal("0.2"), Decimal("3100.5")
    )
    closed = parse_position_event(position(status="CLOSED", size="0", side="LONG"))
    assert closed == PositionEvent("ETH-USD", None, Decimal(0), None)
    with pytest.raises(MalformedAnswerError):
        parse_position_event(position(status="WEIRD"))
    with pytest.raises(MalformedAnswerError):
        parse_position_event(position(side="FLAT"))


def test_bad_items_are_left_out_and_named_while_good_ones_are_kept() -> None:
    parsed = parse_subaccount_update(
        {
            "orders": [order(status="??"), order(id="b" + ORDER_ID[1:])],
            "fills": "not a list",
            "perpetualPositions": [position(), 7],
        },
        {},
    )
    assert [type(e).__name__ for e in parsed.events] == ["OrderEvent", "PositionEvent"]
    assert len(parsed.problems) == 3
    # Problems name fields, never values.
    assert all("??" not in problem for problem in parsed.problems)


def test_the_initial_subscription_teaches_client_ids() -> None:
    known: dict[str, int] = {}
    parse_initial_orders({"orders": [order(), {"junk": 1}], "subaccount": {}}, known)
    assert known == {ORDER_ID: 42}
    parse_initial_orders({}, known)


def test_oracle_prices_from_updates_and_the_snapshot() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    update = parse_oracle_prices(
        {
            "oraclePrices": {
                "ETH-USD": {
                    "oraclePrice": "2750",
                    "effectiveAt": "2026-01-01T00:00:05.000Z",
                    "effectiveAtHeight": "10",
                    "marketId": 1,
                },
                "BTC-USD": {"oraclePrice": "-1"},
            }
        }
    )
    (eth,) = update.prices
    assert (eth.market, eth.price, eth.at.second) == ("ETH-USD", Decimal("2750"), 5)
    assert update.problems == ["oraclePrices: oraclePrice is not positive"]
    snapshot = parse_oracle_prices(
        {"markets": {"ETH-USD": {"oraclePrice": "3000"}, "NEW-USD": {"oraclePrice": None}}},
        now,
    )
    assert [(p.market, p.price, p.at) for p in snapshot.prices] == [
        ("ETH-USD", Decimal("3000"), now)
    ]
    assert parse_oracle_prices({"trading": {"ETH-USD": {}}}).prices == []
    assert parse_oracle_prices({"oraclePrices": []}).problems


def test_the_pacer_allows_two_subscribes_per_second_per_key() -> None:
    pacer = SubscribePacer()
    assert pacer.delay("v4_subaccounts:a/0", 0.0) == 0
    pacer.record("a/0", 10.0)
    pacer.record("a/0", 10.2)
    assert pacer.delay("a/0", 10.5) == pytest.approx(0.5)
    assert pacer.delay("b/0", 10.5) == 0  # another key is not limited
    assert pacer.delay("a/0", 11.0) == 0
    pacer.forget(["a/0"])
    assert pacer.delay("a/0", 10.3) == 0
