"""``DydxExchange`` and its Indexer/node clients against the dYdX double (no mocks).

The double's node verifies signatures, authenticators, sequences and timestamp nonces, and
its Indexer answers with the real REST shapes, so these tests pin the adapter to what the
chain accepts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, TxBody, TxRaw
from v4_proto.dydxprotocol.clob.order_pb2 import Order
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgCancelOrder, MsgPlaceOrder

from core.domain.states import OrderSide, PositionSide
from core.exchange.dydx.adapter import MIN_TIMESTAMP_NONCE, DydxExchange
from core.exchange.dydx.constants import CAPABILITIES
from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.market import DydxMarket
from core.exchange.dydx.network import DydxNetwork
from core.exchange.dydx.node import NodeReader
from core.exchange.dydx.parsing import indexer_order_id
from core.exchange.dydx.venue import DydxVenue
from core.exchange.errors import (
    ExchangeUnavailableError,
    PermanentExchangeError,
    RetryableExchangeError,
    UnknownOutcomeError,
)
from core.exchange.grid import SizeBelowStepError, SizeOffStepError, worst_price
from core.exchange.orders import OrderFlags, OrderKind, OrderRequest, TimeInForce
from core.exchange.port import Exchange, MarketInfo
from core.runtime.config import DydxEndpoints
from core.texts.exchange import NOT_ENOUGH_COLLATERAL
from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.state import order_uuid

BROADCAST_TIMEOUT = 0.4
SLIPPAGE = Decimal("0.01")


class MemoryNonces:
    """Timestamp nonces kept in memory (tests only; production's are durable)."""

    def __init__(self) -> None:
        self.given: list[int] = []
        self._last: dict[str, int] = {}

    async def next_nonce(self, owner_address: str) -> int:
        nonce = max(int(time.time() * 1000), self._last.get(owner_address, 0) + 1)
        self._last[owner_address] = nonce
        self.given.append(nonce)
        return nonce


def endpoints(double: DydxDouble, *, node_url: str | None = None) -> DydxEndpoints:
    return DydxEndpoints(
        network="custom",
        indexer_url=double.indexer_url,
        indexer_ws_url=double.indexer_ws_url,
        node_url=node_url or double.node_url,
        node_tls=False,
        chain_id=double.chain_id,
    )


@pytest.fixture
async def network(dydx_double: DydxDouble) -> AsyncIterator[DydxNetwork]:
    net = DydxNetwork.from_endpoints(
        endpoints(dydx_double),
        node_timeout=2.0,
        broadcast_timeout=BROADCAST_TIMEOUT,
        indexer_timeout=2.0,
    )
    await net.warm_up()
    yield net
    await net.close()


@pytest.fixture
def nonces() -> MemoryNonces:
    return MemoryNonces()


def make_exchange(
    network: DydxNetwork, trader: FundedTrader, nonces: MemoryNonces, **overrides: Any
) -> DydxExchange:
    arguments: dict[str, Any] = {
        "owner_address": trader.owner_address,
        "subaccount_number": trader.subaccount_number,
        "authenticator_id": trader.authenticator_id,
        "private_key": bytes.fromhex(trader.api_private_key_hex),
        "nonces": nonces,
    }
    arguments.update(overrides)
    return DydxVenue(network).trader(**arguments)


@pytest.fixture
def exchange(
    network: DydxNetwork, funded_trader: FundedTrader, nonces: MemoryNonces
) -> DydxExchange:
    return make_exchange(network, funded_trader, nonces)


async def market_buy(
    exchange: DydxExchange,
    client_id: int,
    size: str = "0.01",
    *,
    side: OrderSide = OrderSide.BUY,
    reduce_only: bool = False,
) -> OrderRequest:
    market = await exchange.market("ETH-USD")
    height = await exchange.block_height()
    return OrderRequest(
        market="ETH-USD",
        side=side,
        size=Decimal(size),
        kind=OrderKind.MARKET,
        price=worst_price(side, market.oracle_price, SLIPPAGE, market),
        client_id=client_id,
        reduce_only=reduce_only,
        time_in_force=TimeInForce.IOC,
        good_til_block=exchange.capabilities.short_term_good_til_block(height),
    )


def resting_sell(client_id: int, price: str = "5000") -> OrderRequest:
    return OrderRequest(
        market="ETH-USD",
        side=OrderSide.SELL,
        size=Decimal("0.01"),
        kind=OrderKind.LIMIT,
        price=Decimal(price),
        client_id=client_id,
        good_til_block_time=datetime.now(UTC) + timedelta(hours=1),
    )


def decode(tx_bytes: bytes) -> tuple[TxBody, AuthInfo]:
    raw = TxRaw.FromString(tx_bytes)
    return TxBody.FromString(raw.body_bytes), AuthInfo.FromString(raw.auth_info_bytes)


async def eventually(check: Callable[[], Any], within: float = 3.0) -> Any:
    """Await ``check()`` until it returns something truthy (or ``within`` seconds pass)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


# --- the Indexer ------------------------------------------------------------------------------


async def test_markets_are_parsed_exactly_in_decimal(network: DydxNetwork) -> None:
    markets = await network.indexer.markets()
    assert set(markets) == {"BTC-USD", "ETH-USD", "SOL-USD"}
    eth = markets["ETH-USD"]
    assert eth == MarketInfo(
        ticker="ETH-USD",
        status="ACTIVE",
        oracle_price=Decimal("3000"),
        tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"),
        min_order_size=Decimal("0.001"),
        initial_margin_fraction=Decimal("0.02"),
        maintenance_margin_fraction=Decimal("0.012"),
    )
    assert (await network.indexer.dydx_markets())["ETH-USD"] == DydxMarket(
        info=eth,
        clob_pair_id=1,
        atomic_resolution=-9,
        quantum_conversion_exponent=-9,
        step_base_quantums=1_000_000,
        subticks_per_tick=100_000,
    )
    assert (await network.market_metadata("ETH-USD")).clob_pair_id == 1
    for market in markets.values():
        for value in (market.oracle_price, market.tick_size, market.step_size):
            assert type(value) is Decimal
    assert await network.indexer.market("ETH-USD") == eth
    with pytest.raises(KeyError):
        await network.indexer.market("NOPE-USD")
    assert await network.indexer.height() >= 1


async def test_market_oracle_price_is_at_most_a_second_old(
    dydx_double: DydxDouble, exchange: DydxExchange
) -> None:
    assert (await exchange.market("ETH-USD")).oracle_price == Decimal("3000")
    dydx_double.set_oracle_price("ETH-USD", "3123.4")
    await asyncio.sleep(1.05)
    assert (await exchange.market("ETH-USD")).oracle_price == Decimal("3123.4")
    assert (await exchange.markets())["ETH-USD"].oracle_price == Decimal("3123.4")
    with pytest.raises(KeyError):
        await exchange.market("NOPE-USD")


def test_the_adapter_declares_dydx_capabilities(
    exchange: DydxExchange, network: DydxNetwork
) -> None:
    assert exchange.capabilities is CAPABILITIES is DydxVenue(network).capabilities
    assert CAPABILITIES.short_term_window == 40
    assert CAPABILITIES.short_term_good_til_block(100) == 130


def test_indexer_order_id_is_the_indexers() -> None:
    owner = "dydx1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqjdc7gw"
    for number, client_id, clob_pair_id, flags in [
        (0, 0, 0, 0),
        (0, 7, 1, 0),
        (3, 2**32 - 1, 5, 32),
        (127, 123456, 1, 64),
    ]:
        assert indexer_order_id(owner, number, client_id, clob_pair_id, flags) == order_uuid(
            owner, number, client_id, clob_pair_id, flags
        )
    assert indexer_order_id(owner, 0, 1, 1, OrderFlags.LONG_TERM) == order_uuid(owner, 0, 1, 1, 64)


async def test_account_of_a_funded_and_of_a_never_funded_subaccount(
    exchange: DydxExchange, network: DydxNetwork, funded_trader: FundedTrader, nonces: MemoryNonces
) -> None:
    account = await exchange.account()
    assert account.equity == Decimal("10000")
    assert account.free_collateral == Decimal("10000")
    assert type(account.equity) is Decimal
    assert await exchange.positions() == []
    assert await exchange.open_orders() == []
    assert await exchange.fills() == []

    empty = make_exchange(network, funded_trader, nonces, subaccount_number=3)
    account = await empty.account()
    assert (account.equity, account.free_collateral) == (Decimal(0), Decimal(0))
    assert await empty.positions() == []


async def test_traders_asking_for_one_subaccount_at_once_share_one_indexer_request(
    dydx_double: DydxDouble, funded_trader: FundedTrader, nonces: MemoryNonces
) -> None:
    # A slow proxy in front of the Indexer double counts the requests that reach it.
    hits: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        hits.append(request.path)
        await asyncio.sleep(0.05)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{dydx_double.indexer_url}{request.path_qs}") as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxied = endpoints(dydx_double)
    proxied = DydxEndpoints(
        network="custom",
        indexer_url=f"http://127.0.0.1:{runner.addresses[0][1]}",
        indexer_ws_url=proxied.indexer_ws_url,
        node_url=proxied.node_url,
        node_tls=False,
        chain_id=proxied.chain_id,
    )
    net = DydxNetwork.from_endpoints(proxied, node_timeout=2.0, indexer_timeout=2.0)
    try:
        # Ten jobs of one trader on one bar close: each builds its exchange and sizes.
        jobs = [make_exchange(net, funded_trader, nonces) for _ in range(10)]
        answers = await asyncio.gather(
            *(asyncio.gather(job.account(), job.positions()) for job in jobs)
        )
        subaccount_path = f"/v4/addresses/{funded_trader.owner_address}/subaccountNumber/0"
        assert hits == [subaccount_path]
        assert {account.equity for account, _ in answers} == {Decimal("10000")}
        # A later question is asked again: nothing is served from a cache.
        await jobs[0].account()
        assert hits == [subaccount_path, subaccount_path]
    finally:
        await net.close()
        await runner.cleanup()


# --- a market order end to end ----------------------------------------------------------------


async def test_market_buy_end_to_end(
    dydx_double: DydxDouble,
    exchange: DydxExchange,
    funded_trader: FundedTrader,
) -> None:
    node = dydx_double.node
    request = await market_buy(exchange, client_id=7)
    assert request.price == Decimal("3030")
    signed = await exchange.sign_order(request)
    assert signed.tx_hash == hashlib.sha256(signed.tx_bytes).hexdigest().upper()
    assert node.broadcasts == []  # signing sends nothing

    result = await exchange.broadcast(signed)
    assert (result.accepted, result.already_placed) == (True, False)
    assert (result.tx_hash, result.tx_bytes) == (signed.tx_hash, signed.tx_bytes)

    (record,) = node.broadcasts
    assert record.tx_bytes == signed.tx_bytes
    assert record.tx_hash == signed.tx_hash
    assert record.selected_authenticators == (funded_trader.authenticator_id,)
    (message,) = record.messages
    assert isinstance(message, MsgPlaceOrder)
    placed = message.order
    assert placed.order_id.subaccount_id.owner == funded_trader.owner_address
    assert placed.order_id.subaccount_id.number == 0
    assert placed.order_id.client_id == 7
    assert placed.order_id.order_flags == 0
    assert placed.order_id.clob_pair_id == 1
    assert placed.side == Order.Side.SIDE_BUY
    assert placed.quantums == 10_000_000
    assert placed.subticks == 3_030_000_000
    assert placed.time_in_force == Order.TimeInForce.TIME_IN_FORCE_IOC
    assert placed.reduce_only is False
    assert placed.good_til_block == request.good_til_block
    assert placed.condition_type == Order.ConditionType.CONDITION_TYPE_UNSPECIFIED
    body, auth_info = decode(signed.tx_bytes)
    assert body.memo == "tv2dydx"
    assert auth_info.signer_infos[0].sequence == 0  # short-term: no sequence

    found = await exchange.find_order("ETH-USD", 7, OrderFlags.SHORT_TERM)
    assert found is not None
    assert found.order_id == indexer_order_id(funded_trader.owner_address, 0, 7, 1, 0)
    assert (found.status, found.kind, found.side) == ("FILLED", OrderKind.MARKET, OrderSide.BUY)
    assert (found.size, found.filled_size) == (Decimal("0.01"), Decimal("0.01"))
    assert found.good_til_block == request.good_til_block
    assert await exchange.find_order("ETH-USD", 8, OrderFlags.SHORT_TERM) is None

    (fill,) = await exchange.fills()
    assert (fill.market, fill.side, fill.size) == ("ETH-USD", OrderSide.BUY, Decimal("0.01"))
    assert fill.order_id == found.order_id
    assert fill.price > 0
    assert type(fill.price) is Decimal
    assert type(fill.fee) is Decimal
    assert fill.created_at.tzinfo is not None
    assert await exchange.fills(market="BTC-USD") == []

    (position,) = await exchange.positions()
    assert (position.market, position.side, position.size) == (
        "ETH-USD",
        PositionSide.LONG,
        Decimal("0.01"),
    )
    assert position.entry_price == fill.price

    # The very same bytes again: the node's mempool cache knows them; still one order.
    again = await exchange.broadcast(signed)
    assert (again.already_placed, again.accepted, again.tx_hash) == (True, False, result.tx_hash)
    assert [r.code for r in node.broadcasts] == [0, 19]
    assert len(await dydx_double.acall(lambda: list(dydx_double.state.orders))) == 1
    assert len(await exchange.fills()) == 1

    # A reduce-only market sell closes the position.
    close = await market_buy(exchange, 9, side=OrderSide.SELL, reduce_only=True)
    assert (await exchange.place_order(close)).accepted
    assert node.broadcasts[-1].messages[0].order.reduce_only is True
    assert await exchange.positions() == []


async def test_off_grid_sizes_are_refused_before_anything_is_sent(
    dydx_double: DydxDouble, exchange: DydxExchange
) -> None:
    request = await market_buy(exchange, 1, size="0.0001")
    with pytest.raises(SizeBelowStepError):
        await exchange.place_order(request)
    with pytest.raises(SizeOffStepError):
        await exchange.place_order(await market_buy(exchange, 1, size="0.0015"))
    assert dydx_double.node.broadcasts == []


# --- refusals and faults ----------------------------------------------------------------------


async def test_permanent_refusal_has_a_plain_reason(
    dydx_double: DydxDouble, exchange: DydxExchange
) -> None:
    dydx_double.node.reject_next(1, 3007, "clob", "StatefulOrderCollateralizationCheckFailed")
    with pytest.raises(PermanentExchangeError) as refused:
        await exchange.place_order(await market_buy(exchange, 11))
    assert (refused.value.codespace, refused.value.code) == ("clob", 3007)
    assert refused.value.reason == NOT_ENOUGH_COLLATERAL

    dydx_double.node.reject_next(1, 5001, "clob", "Block rate limit exceeded")
    with pytest.raises(RetryableExchangeError) as limited:
        await exchange.place_order(await market_buy(exchange, 12))
    assert not isinstance(limited.value, ExchangeUnavailableError)
    assert limited.value.code == 5001

    # A real refusal from the chain itself: a reduce-only order with nothing to reduce.
    with pytest.raises(PermanentExchangeError) as nothing:
        await exchange.place_order(
            await market_buy(exchange, 13, side=OrderSide.SELL, reduce_only=True)
        )
    assert (nothing.value.codespace, nothing.value.code) == ("clob", 2001)
    assert "reduce-only" in nothing.value.reason


async def test_a_hang_past_the_deadline_is_an_unknown_outcome(
    dydx_double: DydxDouble, exchange: DydxExchange
) -> None:
    node = dydx_double.node
    signed = await exchange.sign_order(await market_buy(exchange, 21))
    node.hang(2.0, process_first=True)
    started = time.perf_counter()
    with pytest.raises(UnknownOutcomeError) as unknown:
        await exchange.broadcast(signed)
    assert time.perf_counter() - started < BROADCAST_TIMEOUT + 0.3
    assert unknown.value.tx_hash == signed.tx_hash
    (hung,) = node.wait_for_broadcasts(1, timeout=3)
    assert (hung.processed, hung.code) == (True, 0)
    # The order reached the chain; reconciling finds it, and re-sending the bytes is harmless.
    found = await exchange.find_order("ETH-USD", 21, OrderFlags.SHORT_TERM)
    assert found is not None
    assert found.status == "FILLED"
    assert (await exchange.broadcast(signed)).already_placed

    # A node that gives up before processing: the same bytes are then accepted.
    second = await exchange.sign_order(await market_buy(exchange, 22))
    node.hang(2.0, process_first=False)
    with pytest.raises(UnknownOutcomeError):
        await exchange.broadcast(second)
    assert await exchange.find_order("ETH-USD", 22, OrderFlags.SHORT_TERM) is None
    assert (await exchange.broadcast(second)).accepted


async def test_a_node_going_down_mid_call_is_an_unknown_outcome(
    dydx_double: DydxDouble, exchange: DydxExchange
) -> None:
    signed = await exchange.sign_order(await market_buy(exchange, 25))
    dydx_double.node.hang(3.0, process_first=True)
    sending = asyncio.create_task(exchange.broadcast(signed))
    await eventually(lambda: dydx_double.acall(lambda: dydx_double.node.broadcasts))
    # The node processed the order, then shuts down: gRPC says UNAVAILABLE, yet it was sent.
    await dydx_double.acall(dydx_double.node.stop)
    with pytest.raises(UnknownOutcomeError) as unknown:
        await sending
    assert unknown.value.tx_hash == signed.tx_hash
    assert dydx_double.node.broadcasts[0].processed


async def test_the_loop_keeps_running_during_a_hanging_broadcast(
    dydx_double: DydxDouble, exchange: DydxExchange
) -> None:
    signed = await exchange.sign_order(await market_buy(exchange, 31))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    dydx_double.node.hang(1.0)
    with pytest.raises(UnknownOutcomeError):
        await exchange.broadcast(signed)
    ticking.cancel()
    assert len(gaps) >= BROADCAST_TIMEOUT / 0.01 * 0.4
    # A blocking broadcast would show one gap as long as the deadline (0.4 s).
    assert max(gaps) < BROADCAST_TIMEOUT / 2


async def test_unavailable_node_is_retryable_and_nothing_was_sent(
    dydx_double: DydxDouble, exchange: DydxExchange, network: DydxNetwork
) -> None:
    signed = await exchange.sign_order(await market_buy(exchange, 41))
    dydx_double.node.unavailable(1)
    with pytest.raises(ExchangeUnavailableError):
        await exchange.broadcast(signed)
    assert dydx_double.node.broadcasts[-1].processed is False
    assert (await exchange.broadcast(signed)).accepted

    dydx_double.node.unavailable(1, method="GetLatestBlock")
    await asyncio.sleep(1.05)  # past the height cache
    with pytest.raises(ExchangeUnavailableError):
        await exchange.block_height()
    assert await exchange.block_height() > 0


async def test_unreachable_node_and_indexer(
    dydx_double: DydxDouble, funded_trader: FundedTrader, nonces: MemoryNonces
) -> None:
    # A port nothing listens on: the connection is refused, so nothing can have been sent.
    net = DydxNetwork(
        node=NodeReader("127.0.0.1:9", tls=False, timeout=1.0, broadcast_timeout=1.0),
        indexer=IndexerClient("http://127.0.0.1:9", timeout=1.0),
        chain_id=dydx_double.chain_id,
    )
    try:
        with pytest.raises(ExchangeUnavailableError):
            await net.block_height()
        with pytest.raises(ExchangeUnavailableError):
            await net.node.broadcast(b"\x0a\x00")
        with pytest.raises(ExchangeUnavailableError):
            await net.market("ETH-USD")
        exchange = make_exchange(net, funded_trader, nonces)
        with pytest.raises(ExchangeUnavailableError):
            await exchange.account()
    finally:
        await net.close()

    dydx_double.set_indexer_down()
    indexer = IndexerClient(dydx_double.indexer_url, timeout=1.0)
    try:
        with pytest.raises(ExchangeUnavailableError, match="503"):
            await indexer.markets()
    finally:
        await indexer.close()
        dydx_double.set_indexer_down(False)


# --- stateful orders --------------------------------------------------------------------------


async def test_conditional_stop_loss_with_a_timestamp_nonce(
    dydx_double: DydxDouble,
    exchange: DydxExchange,
    funded_trader: FundedTrader,
    nonces: MemoryNonces,
) -> None:
    assert (await exchange.place_order(await market_buy(exchange, 50))).accepted
    stop = OrderRequest(
        market="ETH-USD",
        side=OrderSide.SELL,
        size=Decimal("0.01"),
        kind=OrderKind.STOP,
        price=Decimal("2700"),
        trigger_price=Decimal("2800"),
        client_id=51,
        reduce_only=True,
        time_in_force=TimeInForce.IOC,
        good_til_block_time=datetime.now(UTC) + timedelta(hours=1),
    )
    signed = await exchange.sign_order(stop)
    result = await exchange.broadcast(signed)
    assert result.accepted

    (nonce,) = nonces.given
    assert nonce >= MIN_TIMESTAMP_NONCE
    _, auth_info = decode(signed.tx_bytes)
    assert auth_info.signer_infos[0].sequence == nonce
    record = dydx_double.node.broadcasts[-1]
    assert record.selected_authenticators == (funded_trader.authenticator_id,)
    placed = record.messages[0].order
    assert placed.order_id.order_flags == 32
    assert placed.condition_type == Order.ConditionType.CONDITION_TYPE_STOP_LOSS
    assert placed.conditional_order_trigger_subticks == 2_800_000_000
    assert placed.subticks == 2_700_000_000
    assert placed.reduce_only is True
    assert placed.good_til_block_time == int(stop.good_til_block_time.timestamp())  # type: ignore[union-attr]

    # Accepted stateful orders show up after the block that includes them.
    (untriggered,) = await eventually(lambda: exchange.open_orders("ETH-USD"))
    assert (untriggered.kind, untriggered.status, untriggered.flags) == (
        OrderKind.STOP,
        "UNTRIGGERED",
        OrderFlags.CONDITIONAL,
    )
    assert untriggered.trigger_price == Decimal("2800")
    assert untriggered.reduce_only is True
    assert untriggered.good_til_block_time is not None

    # A second stateful order gets a later nonce, even within the same millisecond.
    resting = await exchange.sign_order(resting_sell(52))
    assert (await exchange.broadcast(resting)).accepted
    assert nonces.given[1] > nonces.given[0]

    dydx_double.set_oracle_price("ETH-USD", "2750")

    async def stopped() -> bool:
        found = await exchange.find_order("ETH-USD", 51, OrderFlags.CONDITIONAL)
        return found is not None and found.status == "FILLED"

    assert await eventually(stopped)
    assert await exchange.positions() == []


async def test_cancel_of_a_long_term_order(
    dydx_double: DydxDouble, exchange: DydxExchange, nonces: MemoryNonces
) -> None:
    request = resting_sell(60)
    assert (await exchange.place_order(request)).accepted

    async def open_order() -> Any:
        found = await exchange.find_order("ETH-USD", 60, OrderFlags.LONG_TERM)
        return found if found is not None and found.status == "OPEN" else None

    found = await eventually(open_order)
    assert (found.kind, found.price, found.time_in_force) == (
        OrderKind.LIMIT,
        Decimal("5000"),
        TimeInForce.GTT,
    )
    assert [o.client_id for o in await exchange.open_orders()] == [60]

    result = await exchange.cancel_order(
        "ETH-USD",
        60,
        OrderFlags.LONG_TERM,
        good_til_block_time=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert result.accepted
    (message,) = dydx_double.node.broadcasts[-1].messages
    assert isinstance(message, MsgCancelOrder)
    assert message.order_id.client_id == 60
    assert message.order_id.order_flags == 64
    assert len(nonces.given) == 2  # place and cancel: both stateful

    async def cancelled() -> bool:
        order = await exchange.find_order("ETH-USD", 60, OrderFlags.LONG_TERM)
        return order is not None and order.status == "CANCELED"

    assert await eventually(cancelled)
    assert await exchange.open_orders() == []

    with pytest.raises(ValueError, match="stateful cancel"):
        await exchange.sign_cancel("ETH-USD", 60, OrderFlags.LONG_TERM, good_til_block=10)
    with pytest.raises(ValueError, match="short-term cancel"):
        await exchange.sign_cancel("ETH-USD", 60, OrderFlags.SHORT_TERM)


async def test_short_term_cancel(dydx_double: DydxDouble, exchange: DydxExchange) -> None:
    height = await exchange.block_height()
    resting = OrderRequest(
        market="ETH-USD",
        side=OrderSide.BUY,
        size=Decimal("0.01"),
        kind=OrderKind.LIMIT,
        price=Decimal("2000"),
        client_id=70,
        good_til_block=exchange.capabilities.short_term_good_til_block(height),
    )
    assert (await exchange.place_order(resting)).accepted
    result = await exchange.cancel_order(
        "ETH-USD", 70, OrderFlags.SHORT_TERM, good_til_block=resting.good_til_block
    )
    assert result.accepted
    _, auth_info = decode(result.tx_bytes)
    assert auth_info.signer_infos[0].sequence == 0
    # Signatures are deterministic: the same cancel signed again is the same transaction.
    again = await exchange.cancel_order(
        "ETH-USD", 70, OrderFlags.SHORT_TERM, good_til_block=resting.good_til_block
    )
    assert (again.already_placed, again.tx_bytes) == (True, result.tx_bytes)
    assert (await exchange.sign_order(resting)).tx_bytes == dydx_double.node.broadcasts[0].tx_bytes


# --- malformed Indexer answers ----------------------------------------------------------------


@pytest.fixture
async def fake_indexer() -> AsyncIterator[tuple[str, dict[str, tuple[int, str]]]]:
    """A tiny HTTP server answering canned bodies by path (to feed the client bad shapes)."""
    answers: dict[str, tuple[int, str]] = {}

    async def handle(request: web.Request) -> web.Response:
        status, body = answers.get(request.path, (404, "Cannot GET"))
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", answers
    await runner.cleanup()


async def real_json(double: DydxDouble, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{double.indexer_url}{path}") as response,
    ):
        assert response.status == 200
        return await response.json()


async def test_malformed_indexer_answers_are_refused(
    dydx_double: DydxDouble,
    exchange: DydxExchange,
    funded_trader: FundedTrader,
    fake_indexer: tuple[str, dict[str, tuple[int, str]]],
) -> None:
    assert (await exchange.place_order(await market_buy(exchange, 80))).accepted
    owner = funded_trader.owner_address
    markets = await real_json(dydx_double, "/v4/perpetualMarkets?ticker=ETH-USD")
    sub = await real_json(dydx_double, f"/v4/addresses/{owner}/subaccountNumber/0")
    orders = await real_json(dydx_double, f"/v4/orders?address={owner}&subaccountNumber=0")
    fills = await real_json(dydx_double, f"/v4/fills?address={owner}&subaccountNumber=0")
    assert orders
    assert fills["fills"]
    assert sub["subaccount"]["openPerpetualPositions"]

    base_url, answers = fake_indexer
    client = IndexerClient(base_url, timeout=2.0)
    sub_path = f"/v4/addresses/{owner}/subaccountNumber/0"

    def serve(path: str, body: Any, status: int = 200) -> None:
        answers[path] = (status, body if isinstance(body, str) else json.dumps(body))

    try:
        # The untouched answers parse.
        serve("/v4/perpetualMarkets", markets)
        serve(sub_path, sub)
        serve("/v4/orders", orders)
        serve("/v4/fills", fills)
        assert (await client.market("ETH-USD")).oracle_price == Decimal("3000")
        assert len((await client.subaccount(owner, 0))[1]) == 1
        assert len(await client.orders(owner, 0)) == 1
        assert len(await client.fills(owner, 0)) == 1

        def corrupt(data: Any, change: Callable[[Any], None]) -> Any:
            copy = json.loads(json.dumps(data))
            change(copy)
            return copy

        def eth(data: Any) -> Any:
            return data["markets"]["ETH-USD"]

        bad_markets = [
            corrupt(markets, lambda d: eth(d).update(oraclePrice="NaN")),
            corrupt(markets, lambda d: eth(d).update(oraclePrice=None)),
            corrupt(markets, lambda d: eth(d).update(tickSize="0.01")),  # contradicts the grid
            corrupt(markets, lambda d: eth(d).update(stepBaseQuantums="many")),
            corrupt(markets, lambda d: eth(d).update(status="SLEEPING")),
            corrupt(markets, lambda d: eth(d).update(ticker="BTC-USD")),
            corrupt(markets, lambda d: d.update(markets=[])),
        ]
        for body in bad_markets:
            serve("/v4/perpetualMarkets", body)
            with pytest.raises(ExchangeUnavailableError, match="malformed"):
                await client.market("ETH-USD")
        for text in ["{not json", '{"markets": {"ETH-USD": {"oraclePrice": Infinity}}}']:
            serve("/v4/perpetualMarkets", text)
            with pytest.raises(ExchangeUnavailableError):
                await client.markets()

        def position(d: Any) -> Any:
            return d["subaccount"]["openPerpetualPositions"]["ETH-USD"]

        for body in [
            corrupt(sub, lambda d: d["subaccount"].update(equity="1.5.0")),
            corrupt(sub, lambda d: d["subaccount"].update(freeCollateral=True)),
            corrupt(sub, lambda d: position(d).update(side="UP")),
            corrupt(sub, lambda d: d.update(subaccount=[])),
        ]:
            serve(sub_path, body)
            with pytest.raises(ExchangeUnavailableError, match="malformed"):
                await client.subaccount(owner, 0)
        # A JSON float is read as a Decimal, exactly, never as a binary float.
        serve(sub_path, corrupt(sub, lambda d: d["subaccount"].update(equity=0.1)))
        assert (await client.subaccount(owner, 0))[0].equity == Decimal("0.1")
        # A 404 that is not the Indexer's own (no "errors" body) is not "never funded".
        serve(sub_path, "<html>not found</html>", status=404)
        with pytest.raises(ExchangeUnavailableError):
            await client.subaccount(owner, 0)

        for body in [
            corrupt(orders, lambda d: d[0].update(clientId="-1")),
            corrupt(orders, lambda d: d[0].update(orderFlags="3")),
            corrupt(orders, lambda d: d[0].update(status="MAYBE")),
            corrupt(orders, lambda d: d[0].update(totalFilled="0.02")),
            corrupt(orders, lambda d: d[0].update(goodTilBlock=None)),
            corrupt(orders, lambda d: d[0].update(id="not-a-uuid")),
            {"orders": orders},  # the real answer is a bare array
        ]:
            serve("/v4/orders", body)
            with pytest.raises(ExchangeUnavailableError, match="malformed"):
                await client.orders(owner, 0)

        for body in [
            corrupt(fills, lambda d: d["fills"][0].update(createdAt="yesterday")),
            corrupt(fills, lambda d: d["fills"][0].update(liquidity="BOTH")),
            corrupt(fills, lambda d: d["fills"][0].update(size="-1")),
            corrupt(fills, lambda d: d.update(fills={})),
        ]:
            serve("/v4/fills", body)
            with pytest.raises(ExchangeUnavailableError, match="malformed"):
                await client.fills(owner, 0)

        serve("/v4/height", {"height": "12.5"})
        with pytest.raises(ExchangeUnavailableError, match="malformed"):
            await client.height()
    finally:
        await client.close()


# --- secrets ------------------------------------------------------------------------------


async def test_the_private_key_never_shows(
    exchange: DydxExchange, funded_trader: FundedTrader, network: DydxNetwork
) -> None:
    key_hex = funded_trader.api_private_key_hex
    for text in (repr(exchange), str(exchange), f"{exchange!r}"):
        assert key_hex.lower() not in text.lower()
        assert funded_trader.owner_address in text
    with pytest.raises(TypeError):
        pickle.dumps(exchange)
    with pytest.raises(ValueError, match="valid") as invalid:
        make_exchange(network, funded_trader, MemoryNonces(), private_key=b"\x00" * 32)
    assert "00" * 32 not in str(invalid.value)
    with pytest.raises(ValueError, match="32 bytes"):
        make_exchange(network, funded_trader, MemoryNonces(), private_key=b"\x01" * 31)


def test_dydx_exchange_implements_the_port(exchange: DydxExchange) -> None:
    port: Exchange = exchange  # mypy checks every method against the Protocol
    assert port.is_paper is False
    assert port.subaccount_number == 0
