"""Block execution through the real dydx-v4-client: a stateful order that passes CheckTx but
fails in DeliverTx, order-id reuse, and the chain's block rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import aiohttp
import grpc
import pytest
from dydx_v4_client.network import NodeConfig
from dydx_v4_client.node.builder import TxOptions
from dydx_v4_client.node.client import NodeClient
from dydx_v4_client.node.message import order_id
from v4_proto.cosmos.tx.v1beta1 import service_pb2, service_pb2_grpc
from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key
from doubles.dydx.orders import build_order
from doubles.dydx.state import ChainState, order_uuid
from tests.integration.doubles.raw_ws import order_update, raw_socket
from tests.integration.doubles.test_double_dydx_node import (
    BUY,
    ETH,
    LONG_TERM,
    SELL,
    USDC_DENOM,
    answer,
    api_wallet,
    blocking,
    long_term,
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


async def get_tx(channel: grpc.Channel, tx_hash: str) -> service_pb2.GetTxResponse:
    stub = service_pb2_grpc.ServiceStub(channel)
    return await asyncio.to_thread(stub.GetTx, service_pb2.GetTxRequest(hash=tx_hash), timeout=5)


async def cancel_with_api_key(
    client: NodeClient, trader: FundedTrader, client_id: int, sequence: int
) -> service_pb2.BroadcastTxResponse:
    options = TxOptions([trader.authenticator_id], sequence, trader.account_number)
    return await blocking(
        client.cancel_order,
        api_wallet(trader, sequence),
        order_id(trader.owner_address, 0, client_id, ETH, LONG_TERM),
        good_til_block_time=int(time.time()) + 3600,
        tx_options=options,
    )


async def test_stateful_order_passing_check_tx_can_fail_in_deliver_tx(
    dydx_double: DydxDouble,
    client: NodeClient,
    channel: grpc.Channel,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    dydx_double.set_stateful_orders_next_block()
    owner = funded_trader.owner_address
    indexer_id = order_uuid(owner, 0, 60, ETH, LONG_TERM)
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", f"{owner}/0")
        # 60 ETH needs 3,600 USDC of initial margin: CheckTx accepts it on 10,000.
        response = await place_with_api_key(
            client, funded_trader, long_term(funded_trader, 60, BUY, "60", "3000")
        )
        assert answer(response) == (0, "", "")
        # Before the block, the owner opens 120 ETH in the web app: 7,200 USDC more margin.
        result, _ = dydx_double.external_trade(owner, "ETH-USD", "BUY", "120")
        assert result.ok
        dydx_double.advance_block()

        found = await get_tx(channel, response.tx_response.txhash)
        tx = found.tx_response
        assert (tx.code, tx.codespace, tx.height) == (3007, "clob", dydx_double.height)
        assert tx.raw_log.startswith("failed to execute message; message index: 0: ")
        assert tx.raw_log.endswith(
            "result (NewlyUndercollateralized): Stateful order collateralization check failed"
        )
        # A failed DeliverTx still consumed the sequence; the Indexer never heard of it.
        assert await owner_sequence(client, funded_trader) == 1
        async with http.get(f"{dydx_double.indexer_url}/v4/orders/{indexer_id}") as got:
            assert got.status == 404
        await ws.nothing(lambda m: "orders" in str(m.get("contents")) and indexer_id in str(m), 0.3)
    failures = dydx_double.call(lambda: list(dydx_double.state.delivery_failures))
    assert [(f.key[2], f.result.code) for f in failures] == [(60, 3007)]


async def test_order_accepted_by_check_tx_is_placed_in_the_next_block(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    dydx_double.set_stateful_orders_next_block()
    owner = funded_trader.owner_address
    indexer_id = order_uuid(owner, 0, 61, ETH, LONG_TERM)
    async with raw_socket(dydx_double.indexer_ws_url) as ws:
        await ws.subscribe("v4_subaccounts", f"{owner}/0")
        first = long_term(funded_trader, 61, SELL, "0.1", "5000")
        assert answer(await place_with_api_key(client, funded_trader, first)) == (0, "", "")
        # Same id again before the block: an uncommitted placement exists.
        again = long_term(funded_trader, 61, SELL, "0.1", "5100")
        code, codespace, raw_log = answer(await place_with_api_key(client, funded_trader, again))
        assert (code, codespace) == (3005, "clob")
        assert raw_log.startswith("An uncommitted stateful order with this OrderId already exists")
        await ws.nothing(order_update(f"{owner}/0", indexer_id, "OPEN"), within=0.2)
        dydx_double.advance_block()
        placed = await ws.next(order_update(f"{owner}/0", indexer_id, "OPEN"))
        assert placed["contents"]["blockHeight"] == str(dydx_double.height)


async def test_cancelled_order_id_is_refused_until_the_cancel_is_committed_then_reusable(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    first = long_term(funded_trader, 62, SELL, "0.1", "5000")
    assert answer(await place_with_api_key(client, funded_trader, first)) == (0, "", "")
    cancel = await cancel_with_api_key(client, funded_trader, 62, 1)
    assert answer(cancel) == (0, "", "")

    again = long_term(funded_trader, 62, SELL, "0.1", "5000")
    code, codespace, raw_log = answer(await place_with_api_key(client, funded_trader, again))
    assert (code, codespace) == (3008, "clob")
    assert raw_log.endswith(
        "Stateful order was previously cancelled and therefore cannot be placed"
    )

    dydx_double.advance_block()
    assert answer(await place_with_api_key(client, funded_trader, again)) == (0, "", "")
    indexer_id = order_uuid(funded_trader.owner_address, 0, 62, ETH, LONG_TERM)
    async with http.get(f"{dydx_double.indexer_url}/v4/orders/{indexer_id}") as got:
        assert (await got.json())["status"] == "OPEN"  # one Indexer row per order id


async def test_third_stateful_order_in_a_block_is_rate_limited_with_the_chains_message(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    now_ms = int(time.time() * 1000)
    codes = []
    for i in range(3):
        sent = long_term(funded_trader, 70 + i, SELL, "0.01", "5000")
        codes.append(
            answer(await place_with_api_key(client, funded_trader, sent, sequence=now_ms + i))
        )
    assert codes[:2] == [(0, "", ""), (0, "", "")]
    assert codes[2] == (
        5001,
        "clob",
        "Rate of 3 exceeds configured block rate limit of {NumBlocks:1 Limit:2} for "
        f"MaxStatefulOrdersPerNBlocks and {funded_trader.owner_address}: Block rate limit "
        "exceeded",
    )


def test_refused_messages_count_towards_the_100_block_limit() -> None:
    state = ChainState()
    owner = new_key().address
    state.deposit(owner, 0, Decimal(100_000))
    market = state.markets["ETH-USD"]
    client_id = iter(range(1, 1000))

    def place() -> int:
        order = build_order(
            market,
            owner,
            next(client_id),
            buy=False,
            size="0.01",
            price="5000",
            flags=LONG_TERM,
            time_in_force=0,
            good_til_block_time=int(state.block_time.timestamp()) + 3600,
        )
        return state.place_order(order).code

    assert [place(), place(), place()] == [0, 0, 5001]  # counted: 3
    accepted = 0
    for _ in range(9):
        state.advance_block()
        results = [place(), place()]
        accepted += results.count(0)
        if 5001 in results:
            break
    # 20 per 100 blocks: the refused third message used one of them.
    assert accepted == 17


def test_a_batch_cancel_weighs_two_short_term_messages() -> None:
    state = ChainState()
    owner = new_key().address
    state.deposit(owner, 0, Decimal(100_000))
    market = state.markets["ETH-USD"]
    gtb = state.height + 5
    for client_id in range(1, 2000):  # 1999 short-term places in this 5-block window
        order = build_order(market, owner, client_id, price="1000", good_til_block=gtb)
        assert state.place_order(order).code == 0
    batch = [OrderBatch(clob_pair_id=1, client_ids=[1])]
    limited = state.batch_cancel(SubaccountId(owner=owner, number=0), batch, gtb)
    assert (limited.code, limited.codespace) == (5001, "clob")
    assert limited.log.startswith(
        "Rate of 2001 exceeds configured block rate limit of {NumBlocks:5 Limit:2000} for "
        "MaxShortTermOrdersAndCancelsPerNBlocks"
    )
