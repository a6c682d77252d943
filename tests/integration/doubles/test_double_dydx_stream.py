"""``v4_subaccounts`` and ``v4_markets`` updates for every order and position change, order
expiry, the per-connection subscription limit and dropped connections (raw WebSocket)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key
from doubles.dydx.orders import build_order
from doubles.dydx.state import (
    CONDITION_STOP_LOSS,
    ORDER_FLAG_CONDITIONAL,
    ORDER_FLAG_LONG_TERM,
    TIF_IOC,
    TIF_UNSPECIFIED,
    ChainState,
    TxResult,
    order_uuid,
)
from tests.integration.doubles.raw_ws import order_update, raw_socket, subaccount_data
from tests.integration.doubles.test_double_dydx_indexer import place_ioc

ETH = "ETH-USD"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def rest_order(http: aiohttp.ClientSession, double: DydxDouble, order_id: str) -> Any:
    async with http.get(f"{double.indexer_url}/v4/orders/{order_id}") as response:
        assert response.status == 200, await response.text()
        return await response.json()


def place_stateful(
    double: DydxDouble,
    owner: str,
    client_id: int,
    *,
    flags: int = ORDER_FLAG_LONG_TERM,
    buy: bool = True,
    size: str = "0.1",
    price: str = "2900",
    expires_in: timedelta = timedelta(hours=1),
    **kwargs: Any,
) -> str:
    """Place a stateful ETH-USD order in the state; returns its Indexer id."""

    def place(state: ChainState) -> TxResult:
        order = build_order(
            state.markets[ETH],
            owner,
            client_id,
            buy=buy,
            size=size,
            price=price,
            flags=flags,
            time_in_force=kwargs.pop("time_in_force", TIF_UNSPECIFIED),
            good_til_block_time=int((state.block_time + expires_in).timestamp()),
            **kwargs,
        )
        return state.place_order(order)

    result = double.call(place, double.state)
    assert result.ok, result.log
    return order_uuid(owner, 0, client_id, 1, flags)


async def test_long_term_order_placement_and_cancel_stream_with_rest_agreeing(
    dydx_double: DydxDouble, funded_trader: FundedTrader, http: aiohttp.ClientSession
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        order_id = place_stateful(dydx_double, owner, 1)
        placed = await ws.next(order_update(sub_id, order_id, "OPEN"))
        (order,) = placed["contents"]["orders"]
        assert (order["orderFlags"], order["timeInForce"], order["size"]) == ("64", "GTT", "0.1")
        assert placed["contents"]["blockHeight"] == str(dydx_double.height)

        assert dydx_double.external_cancel(order_id).ok
        canceled = await ws.next(order_update(sub_id, order_id, "CANCELED"))
        (order,) = canceled["contents"]["orders"]
        assert order["removalReason"] == "ORDER_REMOVAL_REASON_USER_CANCELED"
    assert (await rest_order(http, dydx_double, order_id))["status"] == "CANCELED"


async def test_conditional_order_streams_untriggered_triggered_filled_and_the_oracle(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    place_ioc(dydx_double, owner, 1, ticker=ETH, size="0.1", price="3100")
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        await ws.subscribe("v4_markets", batched=False)
        stop_id = place_stateful(
            dydx_double,
            owner,
            20,
            flags=ORDER_FLAG_CONDITIONAL,
            buy=False,
            price="2700",
            time_in_force=TIF_IOC,
            reduce_only=True,
            condition_type=CONDITION_STOP_LOSS,
            trigger_price="2800",
        )
        untriggered = await ws.next(order_update(sub_id, stop_id, "UNTRIGGERED"))
        assert untriggered["contents"]["orders"][0]["triggerPrice"] == "2800"

        dydx_double.set_oracle_price(ETH, "2750")
        oracle = await ws.next(
            lambda m: m.get("channel") == "v4_markets" and m["type"] != "subscribed"
        )
        assert oracle["type"] == "channel_data"
        assert oracle["contents"]["oraclePrices"][ETH]["oraclePrice"] == "2750"

        dydx_double.advance_block()  # EndBlocker triggers
        await ws.next(order_update(sub_id, stop_id, "OPEN"))
        dydx_double.advance_block()  # the triggered order executes in the next block
        filled = await ws.next(order_update(sub_id, stop_id, "FILLED"))
        contents = filled["contents"]
        (fill,) = contents["fills"]
        assert (fill["orderId"], fill["side"], fill["type"]) == (stop_id, "SELL", "LIMIT")
        (position,) = contents["perpetualPositions"]
        assert (position["market"], position["status"]) == (ETH, "CLOSED")
        assert "assetPositions" in contents


async def test_stateful_and_short_term_orders_expire_as_canceled_with_reason_expired(
    dydx_double: DydxDouble, funded_trader: FundedTrader, http: aiohttp.ClientSession
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        long_id = place_stateful(dydx_double, owner, 5, expires_in=timedelta(seconds=2))

        def rest_short_term(state: ChainState) -> str:
            order = build_order(
                state.markets[ETH],
                owner,
                7,
                price="2000",
                time_in_force=TIF_UNSPECIFIED,
                good_til_block=state.height + 2,
            )
            assert state.place_order(order).ok
            return order_uuid(owner, 0, 7, 1, 0)

        short_id = dydx_double.call(rest_short_term, dydx_double.state)
        await ws.next(order_update(sub_id, short_id, "OPEN"))
        dydx_double.advance_blocks(2)  # the block at good_til_block is committed: expired
        expired = await ws.next(order_update(sub_id, short_id, "CANCELED"))
        assert expired["contents"]["orders"][0]["removalReason"] == ("ORDER_REMOVAL_REASON_EXPIRED")
        assert (await rest_order(http, dydx_double, long_id))["status"] == "OPEN"

        block_time = dydx_double.call(lambda: dydx_double.state.block_time)
        dydx_double.call(dydx_double.state.advance_block, block_time + timedelta(seconds=3))
        expired = await ws.next(order_update(sub_id, long_id, "CANCELED"))
        assert expired["contents"]["orders"][0]["removalReason"] == ("ORDER_REMOVAL_REASON_EXPIRED")
    body = await rest_order(http, dydx_double, long_id)
    assert body["status"] == "CANCELED"
    # Removed from state: the same order id can be placed again (same Indexer row).
    assert place_stateful(dydx_double, owner, 5) == long_id
    assert (await rest_order(http, dydx_double, long_id))["status"] == "OPEN"


async def test_at_most_256_subaccount_subscriptions_per_connection(
    dydx_double: DydxDouble,
) -> None:
    address = new_key().address
    dydx_double.deposit(address, 0, Decimal(10))
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        for number in range(256):
            await ws.send(type="subscribe", channel="v4_subaccounts", id=f"{address}/{number}")
        subscribed = [await ws.next(lambda m: m["type"] == "subscribed") for _ in range(256)]
        assert len({m["id"] for m in subscribed}) == 256
        await ws.send(type="subscribe", channel="v4_subaccounts", id=f"{address}/256")
        error = await ws.next(lambda m: m["type"] == "error")
        assert error["message"] == (
            "Per-connection subscription limit reached for v4_subaccounts (limit=256)."
        )
        # Unsubscribing frees a slot.
        await ws.send(type="unsubscribe", channel="v4_subaccounts", id=f"{address}/0")
        await ws.next(lambda m: m["type"] == "unsubscribed")
        again = await ws.subscribe("v4_subaccounts", f"{address}/256")
        assert again["id"] == f"{address}/256"


async def test_dropped_connection_closes_1012_and_a_resubscription_sees_the_current_state(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address
    sub_id = f"{owner}/0"
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", sub_id)
        assert dydx_double.drop_websockets() == 1
        closed = await ws.closed()
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert closed.data == 1012
        assert json.loads(closed.extra) == {"message": "Service restarting"}

    place_ioc(dydx_double, owner, 30, ticker=ETH, size="0.2", price="3100")  # while away
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        subscribed = await ws.subscribe("v4_subaccounts", sub_id)
        positions = subscribed["contents"]["subaccount"]["openPerpetualPositions"]
        assert positions[ETH]["size"] == "0.2"
        await ws.nothing(subaccount_data(sub_id, "fills"), within=0.2)


async def test_real_indexer_mode_forgets_unfilled_short_term_orders_once_removed(
    dydx_double: DydxDouble, funded_trader: FundedTrader, http: aiohttp.ClientSession
) -> None:
    dydx_double.pause_clock()
    owner = funded_trader.owner_address

    def forget() -> None:
        dydx_double.indexer.forget_unfilled_short_term = True

    dydx_double.call(forget)
    filled_id = place_ioc(dydx_double, owner, 40, ticker=ETH, price="3100")
    unfilled_id = place_ioc(dydx_double, owner, 41, ticker=ETH, price="2000")
    assert (await rest_order(http, dydx_double, filled_id))["status"] == "FILLED"
    async with http.get(f"{dydx_double.indexer_url}/v4/orders/{unfilled_id}") as response:
        assert response.status == 404
    url = f"{dydx_double.indexer_url}/v4/orders?address={owner}&subaccountNumber=0"
    async with http.get(url) as response:
        assert [o["id"] for o in await response.json()] == [filled_id]
