"""An Indexer that trails the chain: REST, ``/v4/height`` and WebSocket updates, set at run
time with ``double.indexer.lag``. Driven with raw HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from tests.integration.doubles.raw_ws import raw_socket, subaccount_data
from tests.integration.doubles.test_double_dydx_indexer import place_ioc

LAG = 0.6


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def indexer_height(http: aiohttp.ClientSession, double: DydxDouble) -> int:
    return int((await get_json(http, f"{double.indexer_url}/v4/height"))["height"])


async def open_positions(
    http: aiohttp.ClientSession, double: DydxDouble, owner: str
) -> dict[str, Any]:
    url = f"{double.indexer_url}/v4/addresses/{owner}/subaccountNumber/0"
    positions: dict[str, Any] = (await get_json(http, url))["subaccount"]["openPerpetualPositions"]
    return positions


async def test_rest_and_height_show_the_chain_as_it_was_lag_seconds_ago(
    dydx_double: DydxDouble, funded_trader: FundedTrader, http: aiohttp.ClientSession
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    start = dydx_double.height
    dydx_double.indexer.lag = LAG
    assert dydx_double.indexer.lag == LAG

    dydx_double.advance_blocks(3)
    order_id = place_ioc(dydx_double, owner, 7)
    assert dydx_double.height == start + 3
    assert await indexer_height(http, dydx_double) == start
    assert await open_positions(http, dydx_double, owner) == {}
    async with http.get(f"{dydx_double.indexer_url}/v4/orders/{order_id}") as response:
        assert response.status == 404  # not indexed yet

    await asyncio.sleep(LAG + 0.2)
    assert await indexer_height(http, dydx_double) == start + 3
    assert (await open_positions(http, dydx_double, owner))["BTC-USD"]["size"] == "0.01"

    # Back to live at run time: REST answers the current chain at once.
    dydx_double.set_indexer_lag(0)
    dydx_double.advance_block()
    assert await indexer_height(http, dydx_double) == start + 4


async def test_websocket_updates_arrive_lag_seconds_late_and_in_order(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        await ws.subscribe("v4_block_height")
        dydx_double.indexer.lag = LAG
        began = time.monotonic()
        first = dydx_double.advance_block()
        place_ioc(dydx_double, owner, 8)
        await ws.nothing(subaccount_data(sub_id, "fills"), within=LAG - 0.3)

        update = await ws.next(subaccount_data(sub_id, "fills"))
        assert time.monotonic() - began >= LAG - 0.05
        block = next(
            m
            for m in ws.seen
            if m.get("channel") == "v4_block_height" and m["type"] == "channel_data"
        )
        # The block came before the fill on the chain, and so on the socket.
        assert ws.seen.index(block) < ws.seen.index(update)
        assert block["contents"]["blockHeight"] == str(first)

        # Lowering the lag to 0 flushes what is queued, still in order, then goes live.
        dydx_double.indexer.lag = 30.0
        place_ioc(dydx_double, owner, 9, buy=False, price="80000")
        await ws.nothing(subaccount_data(sub_id, "fills"), within=0.3)
        dydx_double.indexer.lag = 0
        flushed = await ws.next(subaccount_data(sub_id, "fills"), wait=1.0)
        assert flushed["contents"]["fills"][0]["side"] == "SELL"


async def test_a_subscription_during_the_lag_starts_from_the_old_state_and_misses_nothing(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    dydx_double.indexer.lag = LAG
    place_ioc(dydx_double, owner, 10)
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        subscribed = await ws.subscribe("v4_subaccounts", sub_id)
        assert subscribed["contents"]["subaccount"]["openPerpetualPositions"] == {}
        update = await ws.next(subaccount_data(sub_id, "perpetualPositions"))
        (position,) = update["contents"]["perpetualPositions"]
        assert (position["market"], position["size"]) == ("BTC-USD", "0.01")
        await ws.nothing(subaccount_data(sub_id, "perpetualPositions"), within=LAG)
