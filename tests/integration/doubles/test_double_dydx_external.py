"""Actions outside our API key: the owner trading and cancelling in the web app, and a
liquidation. Our side uses the real dydx-v4-client; the Indexer is read with raw HTTP/WS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import grpc
import pytest
from dydx_v4_client.network import NodeConfig
from dydx_v4_client.node.client import NodeClient

from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.orders import build_order
from doubles.dydx.state import ORDER_FLAG_LONG_TERM, TIF_UNSPECIFIED, order_uuid
from tests.integration.doubles.raw_ws import order_update, raw_socket, subaccount_data
from tests.integration.doubles.test_double_dydx_node import (
    BUY,
    ETH,
    LONG_TERM,
    SELL,
    USDC_DENOM,
    answer,
    long_term,
    open_long,
    owner_sequence,
    place_with_api_key,
)


@pytest.fixture
def channel(dydx_double: DydxDouble) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(dydx_double.node_url) as chan:
        yield chan


@pytest.fixture
async def client(dydx_double: DydxDouble, channel: grpc.Channel) -> NodeClient:
    return await NodeClient.connect(
        NodeConfig(dydx_double.chain_id, "adv4tnt", USDC_DENOM, channel)
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_web_app_trade_moves_the_position_and_streams_without_touching_our_sequence(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    await open_long(client, funded_trader, dydx_double.height, "0.5")
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        result, web_order_id = dydx_double.external_trade(owner, "ETH-USD", "SELL", "0.2")
        assert result.ok, result.log
        update = await ws.next(order_update(sub_id, web_order_id, "FILLED"))
        contents = update["contents"]
        (fill,) = contents["fills"]
        assert (fill["side"], fill["size"], fill["clientMetadata"]) == ("SELL", "0.2", "0")
        (position,) = contents["perpetualPositions"]
        assert (position["size"], position["sumClose"]) == ("0.3", "0.2")
    body = await get_json(
        http, f"{dydx_double.indexer_url}/v4/addresses/{owner}/subaccountNumber/0"
    )
    assert body["subaccount"]["openPerpetualPositions"]["ETH-USD"]["size"] == "0.3"
    assert await owner_sequence(client, funded_trader) == 0  # short-term: no sequence


async def test_web_app_stateful_order_advances_the_shared_owner_sequence(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    cached = await owner_sequence(client, funded_trader)

    def web_order() -> Any:
        state = dydx_double.state
        return build_order(
            state.markets["ETH-USD"],
            owner,
            900,
            buy=False,
            size="0.1",
            price="5000",
            flags=ORDER_FLAG_LONG_TERM,
            time_in_force=TIF_UNSPECIFIED,
            good_til_block_time=int(time.time()) + 3600,
        )

    assert dydx_double.external_place(dydx_double.call(web_order)).ok
    # Our next stateful tx with the sequence we had cached is refused; re-querying fixes it.
    ours = long_term(funded_trader, 80, SELL, "0.1", "5000")
    response = await place_with_api_key(client, funded_trader, ours, sequence=cached)
    assert answer(response) == (
        32,
        "sdk",
        f"account sequence mismatch, expected {cached + 1}, got {cached}: "
        "incorrect account sequence",
    )
    assert answer(await place_with_api_key(client, funded_trader, ours)) == (0, "", "")


async def test_web_app_cancel_of_our_order_streams_and_our_cancel_then_finds_nothing(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    ours = long_term(funded_trader, 81, BUY, "0.1", "2500")
    assert answer(await place_with_api_key(client, funded_trader, ours)) == (0, "", "")
    indexer_id = order_uuid(owner, 0, 81, ETH, LONG_TERM)
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        assert dydx_double.external_cancel(indexer_id).ok
        canceled = await ws.next(order_update(sub_id, indexer_id, "CANCELED"))
        assert canceled["contents"]["orders"][0]["removalReason"] == (
            "ORDER_REMOVAL_REASON_USER_CANCELED"
        )
    order = await get_json(http, f"{dydx_double.indexer_url}/v4/orders/{indexer_id}")
    assert order["status"] == "CANCELED"
    assert await owner_sequence(client, funded_trader) == 2  # ours, then the web app's cancel
    dydx_double.advance_block()

    def cancel_again() -> Any:
        record = dydx_double.state.orders[indexer_id]
        return dydx_double.state.cancel_order(
            record.order.order_id, good_til_block_time=int(time.time()) + 3600
        )

    refused = dydx_double.call(cancel_again)
    assert (refused.code, refused.codespace) == (3006, "clob")


async def test_liquidation_closes_the_position_with_a_liquidated_taker_fill(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    await open_long(client, funded_trader, dydx_double.height, "1")
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        dydx_double.set_oracle_price("ETH-USD", "2500")
        fill = dydx_double.liquidate(owner, "ETH-USD", "2480", insurance_fund_fee_rate="0.01")
        assert (fill.type, fill.liquidity, fill.side) == ("LIQUIDATED", "TAKER", "SELL")
        update = await ws.next(subaccount_data(sub_id, "fills"))
        contents = update["contents"]
        (ws_fill,) = contents["fills"]
        assert (ws_fill["type"], ws_fill["liquidity"], ws_fill["price"]) == (
            "LIQUIDATED",
            "TAKER",
            "2480",
        )
        assert ws_fill["orderId"] is None
        (position,) = contents["perpetualPositions"]
        # ender closes a liquidated position as CLOSED (it never writes LIQUIDATED).
        assert (position["status"], position["exitPrice"]) == ("CLOSED", "2480")
        assert "assetPositions" in contents

    fills = await get_json(
        http, f"{dydx_double.indexer_url}/v4/fills?address={owner}&subaccountNumber=0"
    )
    latest = fills["fills"][0]
    assert (latest["type"], latest["orderId"], latest["clientMetadata"]) == (
        "LIQUIDATED",
        None,
        None,
    )
    positions = await get_json(
        http,
        f"{dydx_double.indexer_url}/v4/perpetualPositions?address={owner}&subaccountNumber=0",
    )
    assert [(p["status"], p["exitPrice"]) for p in positions["positions"]] == [("CLOSED", "2480")]
    sub = await get_json(http, f"{dydx_double.indexer_url}/v4/addresses/{owner}/subaccountNumber/0")
    assert sub["subaccount"]["openPerpetualPositions"] == {}
    # 10,000 − 3,000 bought (+0.0005 fee) + 2,480 sold (−0.0005 fee) − 1 % insurance fee.
    expected = 10_000 - 3000 * 1.0005 + 2480 - 2480 * 0.0005 - 24.8
    assert float(sub["subaccount"]["equity"]) == pytest.approx(expected)


async def test_a_counterparty_taking_part_of_a_resting_order_fills_it_as_maker_then_whole(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    ours = long_term(funded_trader, 82, BUY, "0.1", "2950")
    assert answer(await place_with_api_key(client, funded_trader, ours)) == (0, "", "")
    indexer_id = order_uuid(owner, 0, 82, ETH, LONG_TERM)
    assert dydx_double.resting_order_id(owner, 82) == indexer_id
    with pytest.raises(ValueError, match=r"above the 0\.1 left"):
        dydx_double.fill_resting(indexer_id, "0.2")
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        fill = dydx_double.fill_resting(indexer_id, "0.04")
        assert (fill.liquidity, fill.side, fill.price, fill.size) == (
            "MAKER",
            "BUY",
            Decimal(2950),
            Decimal("0.04"),
        )
        # The Indexer has no "partially filled": the order stays OPEN with its totalFilled.
        update = await ws.next(order_update(sub_id, indexer_id, "OPEN"))
        contents = update["contents"]
        assert contents["orders"][0]["totalFilled"] == "0.04"
        (ws_fill,) = contents["fills"]
        assert (ws_fill["liquidity"], ws_fill["size"], ws_fill["orderId"]) == (
            "MAKER",
            "0.04",
            indexer_id,
        )
        (position,) = contents["perpetualPositions"]
        assert (position["size"], position["entryPrice"]) == ("0.04", "2950")

        dydx_double.fill_resting(indexer_id, "0.06")  # the rest: the order is filled
        update = await ws.next(order_update(sub_id, indexer_id, "FILLED"))
        assert update["contents"]["orders"][0]["totalFilled"] == "0.1"
        assert update["contents"]["perpetualPositions"][0]["size"] == "0.1"
    order = await get_json(http, f"{dydx_double.indexer_url}/v4/orders/{indexer_id}")
    assert (order["status"], order["totalFilled"]) == ("FILLED", "0.1")
    fills = await get_json(
        http, f"{dydx_double.indexer_url}/v4/fills?address={owner}&subaccountNumber=0"
    )
    assert sorted(f["size"] for f in fills["fills"] if f["orderId"] == indexer_id) == [
        "0.04",
        "0.06",
    ]
    with pytest.raises(ValueError, match="not resting"):
        dydx_double.fill_resting(indexer_id, "0.01")
