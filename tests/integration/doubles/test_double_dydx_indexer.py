"""The Indexer double through dydx-v4-client's own IndexerClient (httpx) and IndexerSocket
(websocket-client), unmodified."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from dydx_v4_client.indexer.candles_resolution import CandlesResolution
from dydx_v4_client.indexer.rest.indexer_client import IndexerClient
from dydx_v4_client.indexer.socket.websocket import IndexerSocket

from doubles.dydx.accounts import FundedTrader, dydx_env_overrides
from doubles.dydx.authconfig import decode_sub_authenticators
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key
from doubles.dydx.orders import build_order
from doubles.dydx.state import (
    CONDITION_STOP_LOSS,
    ORDER_FLAG_CONDITIONAL,
    ChainState,
    order_uuid,
)

Message = dict[str, Any]
WAIT = 5.0


@pytest.fixture
def indexer(dydx_double: DydxDouble) -> IndexerClient:
    return IndexerClient(dydx_double.indexer_url)


def place_ioc(
    double: DydxDouble,
    owner: str,
    client_id: int,
    *,
    ticker: str = "BTC-USD",
    buy: bool = True,
    size: str = "0.01",
    price: str = "91000",
) -> str:
    """Place an IOC order straight into the ChainState; returns its Indexer id."""

    def place(state: ChainState) -> str:
        market = state.markets[ticker]
        order = build_order(
            market,
            owner,
            client_id,
            buy=buy,
            size=size,
            price=price,
            good_til_block=state.height + 20,
        )
        result = state.place_order(order)
        assert result.ok, result.log
        return order_uuid(owner, 0, client_id, market.clob_pair_id, 0)

    return double.call(place, double.state)


async def http_error(call: Any) -> httpx.Response:
    with pytest.raises(httpx.HTTPStatusError) as info:
        await call
    return info.value.response


class SocketRecorder:
    """Runs dydx-v4-client's IndexerSocket in a thread and records what it receives."""

    def __init__(self, url: str, on_open: Callable[[IndexerSocket], None]) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.closed = threading.Event()
        self.socket = IndexerSocket(
            url,
            on_open=on_open,
            on_message=lambda _ws, message: self.messages.put(message),
            on_close=lambda _ws, _code, _reason: self.closed.set(),
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.socket.connect()), daemon=True
        )

    def __enter__(self) -> SocketRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Only send the close frame and let run_forever finish the handshake: WebSocketApp.close()
        # from another thread races run_forever's select() on the same socket and can hang it.
        self.socket.keep_running = False
        sock = self.socket.sock
        if sock is not None and sock.connected:
            sock.send_close()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()

    def next_matching(self, predicate: Callable[[Message], bool]) -> Message:
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if predicate(message):
                return message
        raise AssertionError("no matching WebSocket message")

    async def wait_for(self, predicate: Callable[[Message], bool]) -> Message:
        return await asyncio.to_thread(self.next_matching, predicate)

    async def wait_type(self, kind: str, channel: str | None = None) -> Message:
        return await self.wait_for(
            lambda m: m["type"] == kind and (channel is None or m.get("channel") == channel)
        )


# ---------------------------------------------------------------------------- lifecycle


def test_the_double_starts_and_stops_in_well_under_a_second() -> None:
    started = time.perf_counter()
    double = DydxDouble().start()
    start_time = time.perf_counter() - started
    try:
        env = dydx_env_overrides(double)
        assert env["DYDX_NETWORK"] == "custom"
        assert env["DYDX_INDEXER_URL"] == double.indexer_url
        assert env["DYDX_INDEXER_WS_URL"].endswith("/v4/ws")
        assert env["DYDX_NODE_URL"] == f"127.0.0.1:{double.node.port}"
        assert (env["DYDX_NODE_TLS"], env["DYDX_CHAIN_ID"]) == ("false", "localdydxprotocol")
    finally:
        stopped = time.perf_counter()
        double.stop()
        stop_time = time.perf_counter() - stopped
    assert start_time < 1.0
    assert stop_time < 1.0


def test_the_block_clock_runs_and_pauses() -> None:
    with DydxDouble(block_interval=0.02) as double:
        first = double.height
        deadline = time.monotonic() + WAIT
        while double.height < first + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert double.height >= first + 3
        double.pause_clock()
        time.sleep(0.05)  # let an in-flight tick land
        paused_at = double.height
        time.sleep(0.1)
        assert double.height == paused_at
        assert double.advance_blocks(2) == paused_at + 2


def test_funded_trader_has_a_web_app_trading_key(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    state = dydx_double.state

    def read() -> tuple[Any, ...]:
        account = state.get_account(funded_trader.owner_address)
        (record,) = state.get_authenticators(funded_trader.owner_address)
        sub = state.get_subaccount(funded_trader.owner_address, 0)
        return account.account_number, account.pub_key, record, sub.usdc

    account_number, pub_key, record, usdc = dydx_double.call(read)
    assert account_number == funded_trader.account_number
    assert pub_key == funded_trader.owner_public_key
    assert (record.id, record.type) == (funded_trader.authenticator_id, "AllOf")
    subs = decode_sub_authenticators(record.config)
    assert subs[0] == ("SignatureVerification", funded_trader.api_public_key)
    assert subs[2] == ("SubaccountFilter", b"0")
    assert usdc == Decimal(10000)
    assert funded_trader.api_address != funded_trader.owner_address
    assert len(bytes.fromhex(funded_trader.api_private_key_hex)) == 32


# ---------------------------------------------------------------------------- REST


async def test_markets_have_the_real_shape(indexer: IndexerClient) -> None:
    markets = (await indexer.markets.get_perpetual_markets())["markets"]
    assert {"BTC-USD", "ETH-USD"} <= set(markets)
    btc = markets["BTC-USD"]
    assert btc == {
        "clobPairId": "0",
        "ticker": "BTC-USD",
        "status": "ACTIVE",
        "oraclePrice": "90000",
        "priceChange24H": "0",
        "volume24H": "0",
        "trades24H": 0,
        "nextFundingRate": "0",
        "initialMarginFraction": "0.02",
        "maintenanceMarginFraction": "0.012",
        "openInterest": "0",
        "atomicResolution": -10,
        "quantumConversionExponent": -9,
        "tickSize": "1",
        "stepSize": "0.0001",
        "stepBaseQuantums": 1000000,
        "subticksPerTick": 100000,
        "marketType": "CROSS",
        "openInterestLowerCap": "0",
        "openInterestUpperCap": "0",
        "baseOpenInterest": "0",
        "defaultFundingRate1H": "0",
    }
    eth = (await indexer.markets.get_perpetual_markets("ETH-USD"))["markets"]
    assert list(eth) == ["ETH-USD"]
    assert (eth["ETH-USD"]["tickSize"], eth["ETH-USD"]["stepSize"]) == ("0.1", "0.001")

    response = await http_error(indexer.markets.get_perpetual_markets("DOGE-EUR"))
    assert response.status_code == 404
    assert response.json() == {
        "errors": [{"msg": "DOGE-EUR not found in markets of type PERPETUAL"}]
    }


async def test_height_and_time(dydx_double: DydxDouble, indexer: IndexerClient) -> None:
    height = await indexer.utility.get_height()
    assert set(height) == {"height", "time"}
    assert dydx_double.height - int(height["height"]) in (0, 1)  # the block clock runs
    assert height["time"].endswith("Z")
    now = await indexer.utility.get_time()
    assert set(now) == {"iso", "epoch"}
    assert abs(now["epoch"] - time.time()) < 5


async def test_subaccount_is_wrapped_and_missing_ones_are_404(
    indexer: IndexerClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    body = await indexer.account.get_subaccount(owner, 0)
    assert list(body) == ["subaccount"]
    sub = body["subaccount"]
    assert sub["address"] == owner
    assert (sub["subaccountNumber"], sub["equity"], sub["freeCollateral"]) == (0, "10000", "10000")
    assert sub["assetPositions"] == {
        "USDC": {
            "size": "10000",
            "symbol": "USDC",
            "side": "LONG",
            "assetId": "0",
            "subaccountNumber": 0,
        }
    }
    assert sub["openPerpetualPositions"] == {}
    assert sub["marginEnabled"] is True
    assert isinstance(sub["updatedAtHeight"], str)
    assert isinstance(sub["latestProcessedBlockHeight"], str)

    all_subs = await indexer.account.get_subaccounts(owner)
    assert [s["subaccountNumber"] for s in all_subs["subaccounts"]] == [0]

    response = await http_error(indexer.account.get_subaccount(owner, 1))
    assert response.status_code == 404
    assert response.json() == {
        "errors": [{"msg": f"No subaccount found with address {owner} and subaccountNumber 1"}]
    }
    stranger = new_key().address
    response = await http_error(indexer.account.get_subaccounts(stranger))
    assert response.json() == {"errors": [{"msg": f"No subaccounts found for address {stranger}"}]}


async def test_orders_are_a_bare_array(
    dydx_double: DydxDouble, indexer: IndexerClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    filled_id = place_ioc(dydx_double, owner, 11)
    cancelled_id = place_ioc(dydx_double, owner, 12, price="80000")

    orders = await indexer.account.get_subaccount_orders(owner, 0)
    assert isinstance(orders, list)
    by_id = {o["id"]: o for o in orders}
    assert set(by_id) == {filled_id, cancelled_id}
    filled = by_id[filled_id]
    assert filled["status"] == "FILLED"
    assert {
        k: filled[k]
        for k in (
            "clientId",
            "clobPairId",
            "side",
            "size",
            "totalFilled",
            "price",
            "type",
            "timeInForce",
            "reduceOnly",
            "orderFlags",
            "clientMetadata",
            "postOnly",
            "ticker",
            "subaccountNumber",
        )
    } == {
        "clientId": "11",
        "clobPairId": "0",
        "side": "BUY",
        "size": "0.01",
        "totalFilled": "0.01",
        "price": "91000",
        "type": "LIMIT",
        "timeInForce": "IOC",
        "reduceOnly": False,
        "orderFlags": "0",
        "clientMetadata": "2",
        "postOnly": False,
        "ticker": "BTC-USD",
        "subaccountNumber": 0,
    }
    assert "goodTilBlock" in filled
    assert "goodTilBlockTime" not in filled
    assert by_id[cancelled_id]["status"] == "CANCELED"

    assert await indexer.account.get_order(filled_id) == filled
    only_filled = await indexer.account.get_subaccount_orders(owner, 0, status="FILLED")
    assert [o["id"] for o in only_filled] == [filled_id]
    assert await indexer.account.get_subaccount_orders(owner, 0, ticker="ETH-USD") == []
    assert len(await indexer.account.get_subaccount_orders(owner, 0, limit=1)) == 1
    latest = await indexer.account.get_subaccount_orders(owner, 0, return_latest_orders="true")
    assert len(latest) == 2
    # comlink validates with express-validator's strict isBoolean: Python's "True" is a 400.
    response = await http_error(
        indexer.account.get_subaccount_orders(owner, 0, return_latest_orders=True)
    )
    assert response.status_code == 400

    missing = await http_error(indexer.account.get_order("0f0981cb-152e-57d3-bea9-4d8e0dd5ed35"))
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["msg"].startswith("Unable to find order id")


async def test_conditional_orders_show_untriggered_with_a_trigger_price(
    dydx_double: DydxDouble, indexer: IndexerClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address

    def place(state: ChainState) -> None:
        order = build_order(
            state.markets["BTC-USD"],
            owner,
            5,
            buy=False,
            price="80000",
            flags=ORDER_FLAG_CONDITIONAL,
            good_til_block_time=int(state.block_time.timestamp()) + 3600,
            condition_type=CONDITION_STOP_LOSS,
            trigger_price="85000",
        )
        assert state.place_order(order).ok

    dydx_double.call(place, dydx_double.state)
    (order,) = await indexer.account.get_subaccount_orders(owner, 0, status="UNTRIGGERED")
    assert (order["type"], order["triggerPrice"], order["orderFlags"]) == (
        "STOP_LIMIT",
        "85000",
        "32",
    )
    assert order["goodTilBlockTime"].endswith("Z")
    assert "goodTilBlock" not in order


async def test_fills_positions_and_asset_positions(
    dydx_double: DydxDouble, indexer: IndexerClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    order_id = place_ioc(dydx_double, owner, 21)

    (fill,) = (await indexer.account.get_subaccount_fills(owner, 0))["fills"]
    assert {k: v for k, v in fill.items() if k not in ("id", "createdAt", "createdAtHeight")} == {
        "side": "BUY",
        "liquidity": "TAKER",
        "type": "LIMIT",
        "market": "BTC-USD",
        "marketType": "PERPETUAL",
        "price": "90000",
        "size": "0.01",
        "fee": "0.45",
        "affiliateRevShare": "0",
        "orderId": order_id,
        "clientMetadata": "2",
        "subaccountNumber": 0,
    }

    (position,) = (await indexer.account.get_subaccount_perpetual_positions(owner, 0))["positions"]
    assert {
        k: position[k]
        for k in ("market", "status", "side", "size", "maxSize", "entryPrice", "sumOpen")
    } == {
        "market": "BTC-USD",
        "status": "OPEN",
        "side": "LONG",
        "size": "0.01",
        "maxSize": "0.01",
        "entryPrice": "90000",
        "sumOpen": "0.01",
    }
    assert (position["realizedPnl"], position["unrealizedPnl"], position["netFunding"]) == (
        "0",
        "0",
        "0",
    )
    assert (position["exitPrice"], position["closedAt"]) == (None, None)
    closed = await indexer.account.get_subaccount_perpetual_positions(owner, 0, status="CLOSED")
    assert closed == {"positions": []}

    dydx_double.set_oracle_price("BTC-USD", "92000")
    sub = (await indexer.account.get_subaccount(owner, 0))["subaccount"]
    open_position = sub["openPerpetualPositions"]["BTC-USD"]
    assert open_position["unrealizedPnl"] == "20"
    # 10000 - 900 - 0.45 fee + 0.01 * 92000
    assert sub["equity"] == "10019.55"
    assert sub["freeCollateral"] == "10001.15"
    assert sub["assetPositions"]["USDC"]["size"] == "9099.55"
    assets = await indexer.account.get_subaccount_asset_positions(owner, 0)
    assert assets["positions"][0]["size"] == "9099.55"


async def test_historical_pnl(
    dydx_double: DydxDouble, indexer: IndexerClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    dydx_double.call(dydx_double.state.record_pnl_snapshot)
    dydx_double.deposit(owner, 0, "500")
    dydx_double.call(dydx_double.state.record_pnl_snapshot)

    ticks = (await indexer.account.get_subaccount_historical_pnls(owner, 0))["historicalPnl"]
    assert [(t["equity"], t["netTransfers"], t["totalPnl"]) for t in ticks] == [
        ("10500", "10500", "0"),
        ("10000", "10000", "0"),
    ]
    assert set(ticks[0]) == {
        "id",
        "subaccountId",
        "equity",
        "totalPnl",
        "netTransfers",
        "createdAt",
        "blockHeight",
        "blockTime",
    }
    transfers = (await indexer.account.get_subaccount_transfers(owner, 0))["transfers"]
    assert [(t["type"], t["size"]) for t in transfers] == [("DEPOSIT", "500"), ("DEPOSIT", "10000")]


def _usdc(state: ChainState, owner: str) -> Decimal:
    sub = state.get_subaccount(owner, 0)
    assert sub is not None
    return sub.usdc


async def test_funding_payments_settle_positions_and_page_like_comlink(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    place_ioc(dydx_double, owner, 71, ticker="ETH-USD", size="2", price="3100")
    place_ioc(dydx_double, owner, 72, ticker="BTC-USD", buy=False, size="0.01", price="89000")
    before = dydx_double.call(_usdc, dydx_double.state, owner)
    paid = dydx_double.call(
        dydx_double.state.pay_funding,
        {"ETH-USD": Decimal("0.0001"), "BTC-USD": Decimal("0.0002")},
    )
    # Longs pay a positive rate, shorts receive it: −2 × 3000 × 0.0001, +0.01 × 90000 × 0.0002.
    assert sorted((p.ticker, p.payment) for p in paid) == [
        ("BTC-USD", Decimal("0.18")),
        ("ETH-USD", Decimal("-0.6")),
    ]
    after = dydx_double.call(_usdc, dydx_double.state, owner)
    assert after - before == Decimal("-0.42")

    async with httpx.AsyncClient(base_url=dydx_double.indexer_url) as client:
        answer = await client.get(
            "/v4/fundingPayments", params={"address": owner, "subaccountNumber": "0"}
        )
        assert answer.status_code == 200
        body = answer.json()
        assert (body["pageSize"], body["totalResults"], body["offset"]) == (1000, 2, 0)
        eth = next(p for p in body["fundingPayments"] if p["ticker"] == "ETH-USD")
        assert set(eth) == {
            "subaccountNumber",
            "createdAt",
            "createdAtHeight",
            "perpetualId",
            "ticker",
            "oraclePrice",
            "size",
            "side",
            "rate",
            "payment",
            "fundingIndex",
        }
        assert (eth["subaccountNumber"], eth["size"], eth["side"], eth["payment"]) == (
            "0",
            "2",
            "LONG",
            "-0.6",
        )
        one = await client.get(
            "/v4/fundingPayments",
            params={"address": owner, "subaccountNumber": "0", "ticker": "BTC-USD", "page": "1"},
        )
        assert [p["side"] for p in one.json()["fundingPayments"]] == ["SHORT"]
        later = await client.get(
            "/v4/fundingPayments",
            params={"address": owner, "subaccountNumber": "0", "afterOrAt": "2999-01-01T00:00:00Z"},
        )
        assert later.json()["fundingPayments"] == []
        missing = await client.get("/v4/fundingPayments", params={"address": owner})
        assert missing.status_code == 400


async def test_candles_and_orderbook(dydx_double: DydxDouble, indexer: IndexerClient) -> None:
    dydx_double.set_oracle_price("ETH-USD", "3050")
    dydx_double.set_oracle_price("ETH-USD", "2990.5")
    candles = (
        await indexer.markets.get_perpetual_market_candles(
            "ETH-USD", CandlesResolution.ONE_DAY.value
        )
    )["candles"]
    latest = candles[0]
    assert set(latest) == {
        "startedAt",
        "ticker",
        "resolution",
        "low",
        "high",
        "open",
        "close",
        "baseTokenVolume",
        "usdVolume",
        "trades",
        "startingOpenInterest",
        "orderbookMidPriceOpen",
        "orderbookMidPriceClose",
    }
    assert (latest["ticker"], latest["resolution"], latest["close"]) == (
        "ETH-USD",
        "1DAY",
        "2990.5",
    )
    assert (latest["high"], latest["low"]) == ("3050", "2990.5")
    assert latest["startedAt"].endswith("T00:00:00.000Z")

    response = await http_error(indexer.markets.get_perpetual_market_candles("ETH-USD", "2MIN"))
    assert response.status_code == 400

    book = await indexer.markets.get_perpetual_market_orderbook("ETH-USD")
    assert Decimal(book["bids"][0]["price"]) < Decimal("2990.5") < Decimal(book["asks"][0]["price"])
    assert set(book["bids"][0]) == {"price", "size"}


async def test_compliance_screen_and_blocking(
    dydx_double: DydxDouble, indexer: IndexerClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    assert await indexer.utility.compliance_screen(owner) == {"status": "COMPLIANT"}

    dydx_double.set_compliance(owner, "CLOSE_ONLY", "US_GEO")
    screen = await indexer.utility.compliance_screen(owner)
    assert (screen["status"], screen["reason"]) == ("CLOSE_ONLY", "US_GEO")
    assert screen["updatedAt"].endswith("Z")
    assert (await indexer.account.get_subaccount(owner, 0))["subaccount"]["address"] == owner

    dydx_double.set_compliance(owner, "BLOCKED", "COMPLIANCE_PROVIDER")
    assert (await indexer.utility.compliance_screen(owner))["status"] == "BLOCKED"
    assert await indexer.utility.screen(owner) == {
        "restricted": True,
        "reason": "COMPLIANCE_PROVIDER",
    }
    response = await http_error(indexer.account.get_subaccount(owner, 0))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "COMPLIANCE_BLOCKED"

    dydx_double.set_compliance(owner, "COMPLIANT")
    assert await indexer.utility.compliance_screen(owner) == {"status": "COMPLIANT"}


async def test_indexer_down_answers_5xx(dydx_double: DydxDouble, indexer: IndexerClient) -> None:
    dydx_double.set_indexer_down()
    response = await http_error(indexer.utility.get_height())
    assert response.status_code == 503
    dydx_double.set_indexer_down(False)
    assert "height" in await indexer.utility.get_height()


# ---------------------------------------------------------------------------- WebSocket


async def test_v4_subaccounts_streams_a_position_update_after_a_fill(
    dydx_double: DydxDouble, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address

    def on_open(ws: IndexerSocket) -> None:
        ws.subaccounts.subscribe(owner, 0)

    with SocketRecorder(dydx_double.indexer_ws_url, on_open) as recorder:
        connected = await recorder.wait_type("connected")
        assert connected["message_id"] == 0
        connection_id = connected["connection_id"]
        subscribed = await recorder.wait_type("subscribed", "v4_subaccounts")
        assert (subscribed["id"], subscribed["message_id"]) == (f"{owner}/0", 1)
        assert subscribed["connection_id"] == connection_id
        assert set(subscribed["contents"]) == {"subaccount", "orders", "blockHeight"}
        assert subscribed["contents"]["subaccount"]["equity"] == "10000"
        assert subscribed["contents"]["orders"] == []

        order_id = place_ioc(dydx_double, owner, 31)
        update = await recorder.wait_for(
            lambda m: m["type"] == "channel_data" and "perpetualPositions" in m["contents"]
        )
        assert (update["channel"], update["id"], update["version"]) == (
            "v4_subaccounts",
            f"{owner}/0",
            "2.4.0",
        )
        assert update["message_id"] > subscribed["message_id"]
        contents = update["contents"]
        (position,) = contents["perpetualPositions"]
        assert (position["market"], position["side"], position["size"], position["status"]) == (
            "BTC-USD",
            "LONG",
            "0.01",
            "OPEN",
        )
        assert position["address"] == owner
        (fill,) = contents["fills"]
        assert (fill["orderId"], fill["price"], fill["size"], fill["ticker"]) == (
            order_id,
            "90000",
            "0.01",
            "BTC-USD",
        )
        (order,) = contents["orders"]
        assert (order["id"], order["status"]) == (order_id, "FILLED")
        (usdc,) = contents["assetPositions"]
        assert (usdc["symbol"], usdc["size"]) == ("USDC", "9099.55")
        assert contents["blockHeight"] == fill["createdAtHeight"]


async def test_v4_markets_streams_oracle_prices(dydx_double: DydxDouble) -> None:
    def on_open(ws: IndexerSocket) -> None:
        ws.markets.subscribe()

    with SocketRecorder(dydx_double.indexer_ws_url, on_open) as recorder:
        subscribed = await recorder.wait_type("subscribed", "v4_markets")
        assert "id" not in subscribed
        assert subscribed["contents"]["markets"]["BTC-USD"]["oraclePrice"] == "90000"

        dydx_double.set_oracle_price("BTC-USD", "91234.5")
        update = await recorder.wait_type("channel_batch_data", "v4_markets")
        assert "id" not in update
        assert update["version"] == "1.0.0"
        (contents,) = update["contents"]
        price = contents["oraclePrices"]["BTC-USD"]
        assert (price["oraclePrice"], price["marketId"]) == ("91234.5", 0)
        assert 0 < int(price["effectiveAtHeight"]) <= dydx_double.height
        assert price["effectiveAt"].endswith("Z")


async def test_v4_block_height_and_protocol_errors(dydx_double: DydxDouble) -> None:
    def on_open(ws: IndexerSocket) -> None:
        ws.send(json.dumps({"type": "subscribe", "channel": "v4_block_height"}))
        ws.send(json.dumps({"type": "subscribe", "channel": "v4_block_height"}))
        ws.send(json.dumps({"type": "subscribe", "channel": "v4_nope"}))
        ws.send(json.dumps({"type": "subscribe", "channel": "v4_subaccounts", "id": "bad"}))
        ws.send(json.dumps({"type": "subscribe", "channel": "v4_subaccounts"}))
        ws.send(json.dumps({"type": "ping", "id": 7}))
        ws.send(json.dumps({"type": "dance"}))
        ws.send("{not json")

    with SocketRecorder(dydx_double.indexer_ws_url, on_open) as recorder:
        subscribed = await recorder.wait_type("subscribed", "v4_block_height")
        assert set(subscribed["contents"]) == {"height", "time"}
        errors = [(await recorder.wait_type("error"))["message"] for _ in range(6)]
        assert errors[:4] == [
            # socks checks the per-connection limit (1 for v4_block_height) before duplicates.
            "Per-connection subscription limit reached for v4_block_height (limit=1).",
            "Invalid channel: v4_nope",
            "Invalid subscription id for channel: (v4_subaccounts-bad)",
            "Invalid id: undefined",
        ]
        assert errors[4:] == ["Invalid message type: dance", "Invalid message: could not parse"]

        dydx_double.advance_block()
        block = await recorder.wait_type("channel_data", "v4_block_height")
        assert int(block["contents"]["blockHeight"]) >= int(subscribed["contents"]["height"]) + 1
        assert recorder.socket.sock is not None


async def test_ping_gets_a_pong(dydx_double: DydxDouble) -> None:
    def on_open(ws: IndexerSocket) -> None:
        ws.send(json.dumps({"type": "ping", "id": 7}))

    with SocketRecorder(dydx_double.indexer_ws_url, on_open) as recorder:
        pong = await recorder.wait_type("pong")
        assert (pong["id"], pong["message_id"]) == (7, 1)


async def test_dropped_websocket_connections_close_the_client(dydx_double: DydxDouble) -> None:
    def on_open(ws: IndexerSocket) -> None:
        ws.markets.subscribe()

    with SocketRecorder(dydx_double.indexer_ws_url, on_open) as recorder:
        await recorder.wait_type("subscribed", "v4_markets")
        assert dydx_double.drop_websockets() == 1
        assert await asyncio.to_thread(recorder.closed.wait, WAIT)
        await asyncio.to_thread(recorder.thread.join, WAIT)
        assert not recorder.thread.is_alive()
        assert dydx_double.call(lambda: dydx_double.indexer.websocket_count) == 0

    # A fresh connection works again, and an abrupt drop also ends the client.
    with SocketRecorder(dydx_double.indexer_ws_url, on_open) as recorder:
        await recorder.wait_type("subscribed", "v4_markets")
        assert dydx_double.drop_websockets(abrupt=True) == 1
        assert await asyncio.to_thread(recorder.closed.wait, WAIT)


async def test_websocket_refused_while_the_indexer_is_down(dydx_double: DydxDouble) -> None:
    dydx_double.set_indexer_down()
    errors: queue.Queue[Exception] = queue.Queue()
    socket = IndexerSocket(
        dydx_double.indexer_ws_url,
        on_message=lambda _ws, _m: None,
        on_error=lambda _ws, error: errors.put(error),
    )
    await asyncio.to_thread(socket.run_forever)
    error = errors.get(timeout=WAIT)
    assert "503" in str(error)
