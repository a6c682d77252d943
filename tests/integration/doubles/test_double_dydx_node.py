"""The dYdX double's gRPC node, driven by the real, unmodified dydx-v4-client.

The client's ``async`` methods make blocking gRPC calls, so every call runs in a worker thread
(:func:`blocking`), as a product must run it. Positions are then read back from the double's
Indexer REST API and WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import grpc
import pytest
from dydx_v4_client.key_pair import KeyPair
from dydx_v4_client.network import NodeConfig
from dydx_v4_client.node.authenticators import Authenticator, AuthenticatorType
from dydx_v4_client.node.builder import TxOptions
from dydx_v4_client.node.client import NodeClient
from dydx_v4_client.node.message import order, order_id, place_order, send_token, subaccount
from dydx_v4_client.node.message import withdraw as withdraw_message
from dydx_v4_client.wallet import Wallet
from v4_proto.cosmos.tx.v1beta1 import service_pb2, service_pb2_grpc
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import Tx
from v4_proto.dydxprotocol.accountplus import query_pb2 as accountplus_query
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as accountplus_grpc
from v4_proto.dydxprotocol.clob.order_pb2 import Order
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgPlaceOrder, OrderBatch

from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key, web_app_trading_key_config
from doubles.dydx.node import NodeServer, start_node
from doubles.dydx.orders import cancelling, placing
from doubles.dydx.state import ChainState

T = TypeVar("T")

USDC_DENOM = "ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5"
ETH = 1  # clob pair id of ETH-USD: atomic resolution -9, price = subticks·10⁻⁶
BUY = Order.Side.SIDE_BUY
SELL = Order.Side.SIDE_SELL
IOC = Order.TimeInForce.TIME_IN_FORCE_IOC
GTT = Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED
SHORT_TERM, CONDITIONAL, LONG_TERM = 0, 32, 64


def eth_quantums(size: str) -> int:
    """ETH-USD base quantums of a size in ETH."""
    return int(Decimal(size) * 10**9)


def eth_subticks(price: str) -> int:
    """ETH-USD subticks of a USD price."""
    return int(Decimal(price) * 10**6)


async def blocking(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    """Run a dydx-v4-client coroutine method in a worker thread: its gRPC calls block."""
    return await asyncio.to_thread(lambda: asyncio.run(fn(*args, **kwargs)))


def answer(response: service_pb2.BroadcastTxResponse) -> tuple[int, str, str]:
    """(code, codespace, raw_log) of a broadcast answer."""
    tx = response.tx_response
    return tx.code, tx.codespace, tx.raw_log


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def channel(dydx_double: DydxDouble) -> Iterator[grpc.Channel]:
    """An insecure channel to the double's node, as ``make_insecure`` builds it."""
    with grpc.insecure_channel(dydx_double.node_url) as chan:
        yield chan


@pytest.fixture
async def client(dydx_double: DydxDouble, channel: grpc.Channel) -> NodeClient:
    """The real ``NodeClient`` connected to the double."""
    config = NodeConfig(dydx_double.chain_id, "adv4tnt", USDC_DENOM, channel)
    return await NodeClient.connect(config)


@pytest.fixture
def node(dydx_double: DydxDouble) -> NodeServer:
    """The double's node (fault injection and broadcast record)."""
    node: NodeServer = dydx_double.node
    return node


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for the Indexer."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def api_wallet(trader: FundedTrader, sequence: int = 0) -> Wallet:
    """The API key as a product holds it: its key with the owner's account number."""
    return Wallet(KeyPair.from_hex(trader.api_private_key_hex), trader.account_number, sequence)


def owner_wallet(trader: FundedTrader, sequence: int) -> Wallet:
    """The owner's main key (what the user never hands over; tests only)."""
    return Wallet(KeyPair.from_hex(trader.owner_private_key_hex), trader.account_number, sequence)


async def owner_sequence(client: NodeClient, trader: FundedTrader) -> int:
    """The owner's current sequence from the node."""
    return int((await blocking(client.get_account, trader.owner_address)).sequence)


def short_term(
    trader: FundedTrader,
    client_id: int,
    side: Order.Side,
    size: str,
    price: str,
    good_til_block: int,
    *,
    tif: Order.TimeInForce = IOC,
    reduce_only: bool = False,
    subaccount_number: int = 0,
) -> Order:
    """A short-term ETH-USD order of the trader's subaccount."""
    return order(
        order_id(trader.owner_address, subaccount_number, client_id, ETH, SHORT_TERM),
        side,
        eth_quantums(size),
        eth_subticks(price),
        tif,
        reduce_only,
        good_til_block=good_til_block,
    )


def long_term(
    trader: FundedTrader, client_id: int, side: Order.Side, size: str, price: str
) -> Order:
    """A resting long-term ETH-USD order valid for an hour."""
    return order(
        order_id(trader.owner_address, 0, client_id, ETH, LONG_TERM),
        side,
        eth_quantums(size),
        eth_subticks(price),
        GTT,
        False,
        good_til_block_time=int(time.time()) + 3600,
    )


async def place_with_api_key(
    client: NodeClient,
    trader: FundedTrader,
    order_: Order,
    *,
    sequence: int | None = None,
    authenticator_id: int | None = None,
) -> service_pb2.BroadcastTxResponse:
    """Sign with the API key and select the trader's authenticator, as a product does."""
    if sequence is None:
        sequence = await owner_sequence(client, trader)
    options = TxOptions(
        authenticators=[trader.authenticator_id if authenticator_id is None else authenticator_id],
        sequence=sequence,
        account_number=trader.account_number,
    )
    return await blocking(client.place_order, api_wallet(trader, sequence), order_, options)


async def open_long(client: NodeClient, trader: FundedTrader, height: int, size: str) -> None:
    """Open a long ETH-USD position with an IOC buy above the oracle (3000)."""
    response = await place_with_api_key(
        client, trader, short_term(trader, 1, BUY, size, "3100", height + 10)
    )
    assert answer(response) == (0, "", "")


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    """GET a JSON body, asserting 200."""
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def subaccount_json(
    http: aiohttp.ClientSession, double: DydxDouble, trader: FundedTrader
) -> dict[str, Any]:
    """The Indexer's ``/v4/addresses/{owner}/subaccountNumber/0`` subaccount."""
    body = await get_json(
        http, f"{double.indexer_url}/v4/addresses/{trader.owner_address}/subaccountNumber/0"
    )
    subaccount_: dict[str, Any] = body["subaccount"]
    return subaccount_


async def orders_json(
    http: aiohttp.ClientSession, double: DydxDouble, trader: FundedTrader
) -> list[dict[str, Any]]:
    """The Indexer's ``/v4/orders`` of subaccount 0."""
    orders: list[dict[str, Any]] = await get_json(
        http,
        f"{double.indexer_url}/v4/orders?address={trader.owner_address}&subaccountNumber=0",
    )
    return orders


# --- startup and queries ----------------------------------------------------------------------


async def test_node_starts_in_well_under_a_second(dydx_double: DydxDouble) -> None:
    async def start_and_stop() -> float:
        started = time.perf_counter()
        fresh = await start_node(ChainState(chain_id="dydx-testnet-4"))
        elapsed = time.perf_counter() - started
        assert fresh.port > 0
        await fresh.stop()
        return elapsed

    elapsed: float = await dydx_double.acall(start_and_stop)  # type: ignore[arg-type]
    assert elapsed < 0.5
    started = time.perf_counter()
    with DydxDouble() as whole:
        assert whole.node.port > 0
    assert time.perf_counter() - started < 1.0


async def test_queries_the_client_uses(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    assert await blocking(client.latest_block_height) == dydx_double.height
    block = await blocking(client.latest_block)
    assert block.sdk_block.header.height == block.block.header.height == dydx_double.height
    assert block.block.header.chain_id == dydx_double.chain_id
    info = await blocking(client.get_node_info)
    assert info.default_node_info.network == dydx_double.chain_id

    account = await blocking(client.get_account, funded_trader.owner_address)
    assert account.address == funded_trader.owner_address
    assert account.account_number == funded_trader.account_number
    assert account.sequence == 0
    assert account.pub_key.type_url == "/cosmos.crypto.secp256k1.PubKey"
    with pytest.raises(grpc.RpcError) as unknown:
        await blocking(client.get_account, new_key().address)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    authenticators = await blocking(client.get_authenticators, funded_trader.owner_address)
    (only,) = authenticators.account_authenticators
    assert (only.id, only.type) == (funded_trader.authenticator_id, "AllOf")
    # A product finds its key's authenticator by the SignatureVerification config.
    subs = json.loads(only.config)
    assert subs[0]["type"] == "SignatureVerification"
    assert subs[0]["config"] == base64.b64encode(funded_trader.api_public_key).decode()

    pair = await blocking(client.get_clob_pair, ETH)
    assert (pair.id, pair.step_base_quantums, pair.subticks_per_tick) == (1, 1_000_000, 100_000)
    assert pair.quantum_conversion_exponent == -9
    price = await blocking(client.get_price, 1)
    assert Decimal(price.price).scaleb(price.exponent) == Decimal(3000)
    perpetual = await blocking(client.get_perpetual, ETH)
    assert (perpetual.perpetual.params.ticker, perpetual.perpetual.params.atomic_resolution) == (
        "ETH-USD",
        -9,
    )
    sub = await blocking(client.get_subaccount, funded_trader.owner_address, 0)
    (usdc,) = sub.asset_positions
    # dtypes.SerializableInt is big.Int.GobEncode: version/sign byte, then big-endian.
    assert usdc.quantums == b"\x02" + (10_000 * 10**6).to_bytes(5, "big")


# --- permissioned keys ------------------------------------------------------------------------


async def test_api_key_order_is_accepted_and_shows_on_the_indexer(
    dydx_double: DydxDouble,
    client: NodeClient,
    node: NodeServer,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    owner = funded_trader.owner_address
    async with http.ws_connect(dydx_double.indexer_ws_url) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "connected"
        await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{owner}/0"})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"

        height = await blocking(client.latest_block_height)
        the_order = short_term(funded_trader, 7, BUY, "0.01", "3100", height + 10)
        response = await place_with_api_key(client, funded_trader, the_order)

        assert answer(response) == (0, "", "")
        assert response.tx_response.height == 0  # SYNC broadcast: CheckTx only
        record = node.broadcasts[-1]
        assert response.tx_response.txhash == hashlib.sha256(record.tx_bytes).hexdigest().upper()
        assert record.accepted
        assert record.status == "answered"
        assert record.selected_authenticators == (funded_trader.authenticator_id,)
        assert record.type_urls == ("/dydxprotocol.clob.MsgPlaceOrder",)
        assert record.messages[0].order == the_order
        assert record.received_wall_ns > 0
        assert record.answered_perf_ns is not None
        assert record.answered_perf_ns >= record.received_perf_ns

        position = None
        deadline = time.monotonic() + 5
        while position is None and time.monotonic() < deadline:
            message = await ws.receive_json(timeout=5)
            if message["type"] == "channel_data":
                for candidate in message["contents"].get("perpetualPositions", []):
                    if candidate["market"] == "ETH-USD":
                        position = candidate
        assert position is not None
        assert (position["side"], position["size"], position["status"]) == ("LONG", "0.01", "OPEN")

    subaccount_ = await subaccount_json(http, dydx_double, funded_trader)
    eth = subaccount_["openPerpetualPositions"]["ETH-USD"]
    assert (eth["side"], eth["size"], eth["status"]) == ("LONG", "0.01", "OPEN")
    body = await get_json(
        http,
        f"{dydx_double.indexer_url}/v4/perpetualPositions?address={owner}&subaccountNumber=0",
    )
    (listed,) = body["positions"]
    assert (listed["market"], listed["status"], listed["size"]) == ("ETH-USD", "OPEN", "0.01")
    # Short-term orders neither check nor consume the owner's sequence.
    assert await owner_sequence(client, funded_trader) == 0


async def test_key_no_authenticator_names_is_rejected(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    height = await blocking(client.latest_block_height)
    the_order = short_term(funded_trader, 8, BUY, "0.01", "3100", height + 10)
    stranger = Wallet(KeyPair.from_hex(new_key().private_key_hex), funded_trader.account_number, 0)
    aid = funded_trader.authenticator_id
    options = TxOptions([aid], 0, funded_trader.account_number)

    response = await blocking(client.place_order, stranger, the_order, options)
    assert answer(response) == (
        100,
        "accountplus",
        f"authentication failed for message 0, authenticator id {aid}, type AllOf: "
        f"signature verification failed; please verify account number "
        f"({funded_trader.account_number}), sequence (0) and chain-id ({dydx_double.chain_id}): "
        "Signature verification failed",
    )

    # Without TxExtension the classic flow wants the owner's own key. (The client's
    # place_order would first look up the API address's account, which does not exist.)
    unextended = client.builder.build(api_wallet(funded_trader), place_order(the_order))
    response = await blocking(client.broadcast, unextended)
    assert answer(response) == (
        8,
        "sdk",
        f"pubKey does not match signer address {funded_trader.owner_address} "
        "with signer index: 0: invalid pubkey",
    )

    # Selecting an authenticator the owner does not have.
    response = await place_with_api_key(
        client, funded_trader, the_order, authenticator_id=aid + 100
    )
    assert answer(response) == (
        1,
        "accountplus",
        f"failed to get initialized authenticator (account = {funded_trader.owner_address}, "
        f"authenticator id = {aid + 100}, msg index = 0, "
        "msg type url = /dydxprotocol.clob.MsgPlaceOrder): "
        f"authenticator {aid + 100} not found for account {funded_trader.owner_address}: "
        "Authenticator is not found",
    )
    assert dydx_double.call(lambda: dydx_double.state.orders) == {}


async def test_api_key_cannot_withdraw_send_or_trade_another_subaccount(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    aid = funded_trader.authenticator_id
    options = TxOptions([aid], 0, funded_trader.account_number)
    wallet = api_wallet(funded_trader)

    withdrawal = client.builder.build(
        wallet, withdraw_message(subaccount(owner, 0), owner, 0, 1_000_000_000), tx_options=options
    )
    code, codespace, raw_log = answer(await blocking(client.broadcast, withdrawal))
    assert (code, codespace) == (4, "sdk")
    assert raw_log == (
        f"authentication failed for message 0, authenticator id {aid}, type AllOf: "
        f"all sub-authenticators failed to authenticate: "
        f"[MessageFilter (id = {aid}.1.0)] message types do not match. "
        "Got /dydxprotocol.sending.MsgWithdrawFromSubaccount, "
        "Expected map[/dydxprotocol.clob.MsgPlaceOrder:{}]: Message type verification failed; ; "
        f"[MessageFilter (id = {aid}.1.1)] message types do not match. "
        "Got /dydxprotocol.sending.MsgWithdrawFromSubaccount, "
        "Expected map[/dydxprotocol.clob.MsgCancelOrder:{}]: Message type verification failed; ; "
        f"[MessageFilter (id = {aid}.1.2)] message types do not match. "
        "Got /dydxprotocol.sending.MsgWithdrawFromSubaccount, "
        "Expected map[/dydxprotocol.clob.MsgBatchCancel:{}]: Message type verification failed; "
        ": unauthorized"
    )

    send = client.builder.build(
        wallet, send_token(owner, new_key().address, 10**18, "adv4tnt"), tx_options=options
    )
    code, codespace, raw_log = answer(await blocking(client.broadcast, send))
    assert (code, codespace) == (4, "sdk")
    assert "Got /cosmos.bank.v1beta1.MsgSend" in raw_log
    assert raw_log.startswith(f"authentication failed for message 0, authenticator id {aid}")

    height = await blocking(client.latest_block_height)
    other = short_term(funded_trader, 9, BUY, "0.01", "3100", height + 10, subaccount_number=1)
    code, codespace, raw_log = answer(await place_with_api_key(client, funded_trader, other))
    assert (code, codespace) == (4, "sdk")
    assert raw_log == (
        f"authentication failed for message 0, authenticator id {aid}, type AllOf: "
        "subaccount number 1 not in whitelist map[0:{}]: unauthorized"
    )

    # Nothing moved and the refused transactions consumed no sequence.
    sub = dydx_double.call(lambda: dydx_double.state.get_subaccount(owner, 0))
    assert sub is not None
    assert dydx_double.call(lambda: sub.usdc) == Decimal(10_000)
    assert await owner_sequence(client, funded_trader) == 0

    # The owner's own key may withdraw (classic flow: Simulate, then a sequence-checked tx).
    response = await blocking(
        client.withdraw, owner_wallet(funded_trader, 0), subaccount(owner, 0), owner, 0, 10**9
    )
    assert answer(response) == (0, "", "")
    assert dydx_double.call(lambda: sub.usdc) == Decimal(9_000)
    assert await owner_sequence(client, funded_trader) == 1


async def test_wrong_chain_id_or_account_number_fails_signature_verification(
    dydx_double: DydxDouble,
    channel: grpc.Channel,
    client: NodeClient,
    funded_trader: FundedTrader,
) -> None:
    height = await blocking(client.latest_block_height)
    the_order = short_term(funded_trader, 10, BUY, "0.01", "3100", height + 10)
    aid = funded_trader.authenticator_id
    expected = (
        100,
        "accountplus",
        f"authentication failed for message 0, authenticator id {aid}, type AllOf: "
        "signature verification failed; please verify account number "
        f"({funded_trader.account_number}), sequence (0) and chain-id ({dydx_double.chain_id}): "
        "Signature verification failed",
    )

    mainnet = await NodeClient.connect(NodeConfig("dydx-mainnet-1", "adydx", USDC_DENOM, channel))
    response = await place_with_api_key(mainnet, funded_trader, the_order)
    assert answer(response) == expected

    wrong_number = TxOptions([aid], 0, funded_trader.account_number + 1)
    response = await blocking(
        client.place_order, api_wallet(funded_trader), the_order, wrong_number
    )
    assert answer(response) == expected

    # Classic flow (owner key, no TxExtension) with a wrong account number.
    wallet = Wallet(
        KeyPair.from_hex(funded_trader.owner_private_key_hex), funded_trader.account_number + 1, 0
    )
    response = await blocking(client.place_order, wallet, the_order)
    assert answer(response) == (
        4,
        "sdk",
        "signature verification failed; please verify account number "
        f"({funded_trader.account_number}) and chain-id ({dydx_double.chain_id}): "
        "(unable to verify single signer signature): unauthorized",
    )
    assert dydx_double.call(lambda: dydx_double.state.orders) == {}


async def test_owner_adds_and_removes_keys_through_the_node(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    owner = funded_trader.owner_address
    key = new_key()
    # dydx-v4-client's own composition (JSON byte arrays, re-encoded to base64 by the client).
    authenticator = Authenticator.compose(
        AuthenticatorType.AllOf,
        [
            Authenticator.signature_verification(key.public_key),
            Authenticator.compose(
                AuthenticatorType.AnyOf,
                [
                    Authenticator.message_filter("/dydxprotocol.clob.MsgPlaceOrder"),
                    Authenticator.message_filter("/dydxprotocol.clob.MsgCancelOrder"),
                ],
            ),
            Authenticator.clob_pair_id_filter([ETH]),
        ],
    )
    response = await blocking(
        client.add_authenticator, owner_wallet(funded_trader, 0), authenticator
    )
    assert answer(response) == (0, "", "")
    listed = (await blocking(client.get_authenticators, owner)).account_authenticators
    assert [a.id for a in listed] == [
        funded_trader.authenticator_id,
        funded_trader.authenticator_id + 1,
    ]
    new_id = listed[-1].id
    assert await owner_sequence(client, funded_trader) == 1

    trader = FundedTrader(
        owner_address=owner,
        owner_private_key_hex=funded_trader.owner_private_key_hex,
        owner_public_key=funded_trader.owner_public_key,
        account_number=funded_trader.account_number,
        api_private_key_hex=key.private_key_hex,
        api_public_key=key.public_key,
        api_address=key.address,
        authenticator_id=new_id,
    )
    height = await blocking(client.latest_block_height)
    response = await place_with_api_key(
        client, trader, short_term(trader, 11, BUY, "0.01", "3100", height + 10)
    )
    assert answer(response) == (0, "", "")
    btc = order(
        order_id(owner, 0, 12, 0, SHORT_TERM),
        BUY,
        1_000_000,
        9_500_000_000,
        IOC,
        False,
        good_til_block=height + 10,
    )
    code, codespace, raw_log = answer(await place_with_api_key(client, trader, btc))
    assert (code, codespace) == (102, "accountplus")
    assert raw_log.endswith(
        "order id 0 not in whitelist map[1:{}]: Clob pair id verification failed"
    )

    # An invalid key is refused when the message executes; the sequence is still used.
    bad = Authenticator(AuthenticatorType.SignatureVerification, b"not a key")
    response = await blocking(client.add_authenticator, owner_wallet(funded_trader, 1), bad)
    assert answer(response) == (1, "undefined", "internal")
    assert await owner_sequence(client, funded_trader) == 2

    response = await blocking(client.remove_authenticator, owner_wallet(funded_trader, 2), new_id)
    assert answer(response) == (0, "", "")
    response = await place_with_api_key(
        client, trader, short_term(trader, 13, BUY, "0.01", "3100", height + 10)
    )
    assert answer(response)[:2] == (1, "accountplus")
    response = await blocking(client.remove_authenticator, owner_wallet(funded_trader, 3), new_id)
    assert answer(response) == (
        1,
        "accountplus",
        "failed to execute message; message index: 0: RemoveAuthenticator: failed to get "
        f"authenticator {new_id} for address {owner}: Authenticator is not found",
    )


async def test_web_app_key_added_through_the_node_trades(
    dydx_double: DydxDouble, client: NodeClient, http: aiohttp.ClientSession
) -> None:
    owner, key = new_key(), new_key()
    dydx_double.create_account(owner.address)
    dydx_double.deposit(owner.address, 0, "1000")
    number = (await blocking(client.get_account, owner.address)).account_number
    config = web_app_trading_key_config(key.public_key)
    owner_key = Wallet(KeyPair.from_hex(owner.private_key_hex), number, 0)
    response = await blocking(
        client.add_authenticator, owner_key, Authenticator(AuthenticatorType.AllOf, config)
    )
    assert answer(response) == (0, "", "")
    (added,) = (await blocking(client.get_authenticators, owner.address)).account_authenticators
    assert (added.type, added.config) == ("AllOf", config)

    trader = FundedTrader(
        owner_address=owner.address,
        owner_private_key_hex=owner.private_key_hex,
        owner_public_key=owner.public_key,
        account_number=number,
        api_private_key_hex=key.private_key_hex,
        api_public_key=key.public_key,
        api_address=key.address,
        authenticator_id=added.id,
    )
    height = await blocking(client.latest_block_height)
    response = await place_with_api_key(
        client, trader, short_term(trader, 1, SELL, "0.1", "2900", height + 10)
    )
    assert answer(response) == (0, "", "")
    subaccount_ = await subaccount_json(http, dydx_double, trader)
    eth = subaccount_["openPerpetualPositions"]["ETH-USD"]
    assert (eth["side"], eth["size"]) == ("SHORT", "-0.1")


async def test_owner_key_sets_the_account_pubkey_on_first_use(
    dydx_double: DydxDouble, client: NodeClient
) -> None:
    owner = new_key()
    dydx_double.create_account(owner.address)
    dydx_double.deposit(owner.address, 0, "1000")
    account = await blocking(client.get_account, owner.address)
    assert not account.HasField("pub_key")

    height = await blocking(client.latest_block_height)
    the_order = order(
        order_id(owner.address, 0, 1, ETH, SHORT_TERM),
        BUY,
        10_000_000,
        3_100_000_000,
        IOC,
        False,
        good_til_block=height + 10,
    )
    wallet = Wallet(KeyPair.from_hex(owner.private_key_hex), account.account_number, 0)
    assert answer(await blocking(client.place_order, wallet, the_order)) == (0, "", "")
    account = await blocking(client.get_account, owner.address)
    assert account.HasField("pub_key")
    assert owner.public_key in account.pub_key.value


async def test_api_key_cancels_and_batch_cancels(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    height = dydx_double.height
    owner = funded_trader.owner_address
    for client_id in (90, 91, 92):
        resting = short_term(funded_trader, client_id, BUY, "0.01", "2000", height + 20, tif=GTT)
        assert answer(await place_with_api_key(client, funded_trader, resting)) == (0, "", "")
    stateful = long_term(funded_trader, 93, SELL, "0.01", "5000")
    assert answer(await place_with_api_key(client, funded_trader, stateful)) == (0, "", "")

    options = TxOptions([funded_trader.authenticator_id], 1, funded_trader.account_number)
    cancel = await blocking(
        client.cancel_order,
        api_wallet(funded_trader, 1),
        order_id(owner, 0, 90, ETH, SHORT_TERM),
        height + 20,
        None,
        options,
    )
    assert answer(cancel) == (0, "", "")
    batch = await blocking(
        client.batch_cancel_orders,
        api_wallet(funded_trader, 1),
        subaccount(owner, 0),
        [OrderBatch(clob_pair_id=ETH, client_ids=[91, 92])],
        height + 20,
        options,
    )
    assert answer(batch) == (0, "", "")
    # Short-term cancels don't use the sequence; the stateful cancel needs it (1 after the
    # long-term placement) and consumes it.
    stateful_cancel = await blocking(
        client.cancel_order,
        api_wallet(funded_trader, 1),
        order_id(owner, 0, 93, ETH, LONG_TERM),
        None,
        int(time.time()) + 3600,
        options,
    )
    assert answer(stateful_cancel) == (0, "", "")
    assert await owner_sequence(client, funded_trader) == 2
    statuses = {
        o["clientId"]: o["status"] for o in await orders_json(http, dydx_double, funded_trader)
    }
    assert statuses == {"90": "CANCELED", "91": "CANCELED", "92": "CANCELED", "93": "CANCELED"}


@pytest.mark.parametrize("filter_type", ["SubaccountFilter", "ClobPairIdFilter"])
async def test_filters_without_a_message_filter_let_a_withdrawal_through(
    dydx_double: DydxDouble,
    client: NodeClient,
    node: NodeServer,
    funded_trader: FundedTrader,
    filter_type: str,
) -> None:
    owner = funded_trader.owner_address
    key = new_key()
    config = json.dumps(
        [
            {"type": "SignatureVerification", "config": base64.b64encode(key.public_key).decode()},
            {"type": filter_type, "config": base64.b64encode(b"0").decode()},
        ]
    ).encode()
    aid = dydx_double.add_authenticator(owner, "AllOf", config)
    wallet = Wallet(KeyPair.from_hex(key.private_key_hex), funded_trader.account_number, 0)

    def withdrawal(sequence: int) -> Tx:
        return client.builder.build(
            wallet,
            withdraw_message(subaccount(owner, 0), key.address, 0, 10**9),
            tx_options=TxOptions([aid], sequence, funded_trader.account_number),
        )

    # x/accountplus: these filters only inspect clob messages and skip every other one.
    assert answer(await blocking(client.broadcast, withdrawal(0))) == (0, "", "")
    sub = dydx_double.call(lambda: dydx_double.state.get_subaccount(owner, 0))
    assert sub is not None
    assert dydx_double.call(lambda: sub.usdc) == Decimal(9_000)

    if filter_type == "ClobPairIdFilter":
        # A later v4-chain revision makes ClobPairIdFilter fail closed.
        node.clob_pair_filter_fail_closed = True
        code, codespace, raw_log = answer(await blocking(client.broadcast, withdrawal(1)))
        assert (code, codespace) == (102, "accountplus")
        assert raw_log == (
            f"authentication failed for message 0, authenticator id {aid}, type AllOf: "
            "ClobPairIdFilter does not authorize message type "
            "/dydxprotocol.sending.MsgWithdrawFromSubaccount: Clob pair id verification failed"
        )


# --- order semantics --------------------------------------------------------------------------


async def test_stop_loss_triggers_when_the_oracle_crosses_it(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    await open_long(client, funded_trader, dydx_double.height, "0.01")
    stop_loss = order(
        order_id(funded_trader.owner_address, 0, 20, ETH, CONDITIONAL),
        SELL,
        eth_quantums("0.01"),
        eth_subticks("2700"),
        IOC,
        True,
        good_til_block_time=int(time.time()) + 3600,
        condition_type=Order.ConditionType.CONDITION_TYPE_STOP_LOSS,
        conditional_order_trigger_subticks=eth_subticks("2800"),
    )
    assert answer(await place_with_api_key(client, funded_trader, stop_loss)) == (0, "", "")
    assert await owner_sequence(client, funded_trader) == 1  # stateful: sequence-checked

    (conditional,) = [
        o for o in await orders_json(http, dydx_double, funded_trader) if o["clientId"] == "20"
    ]
    assert conditional["status"] == "UNTRIGGERED"

    dydx_double.set_oracle_price("ETH-USD", "2900")
    dydx_double.advance_blocks(2)
    (conditional,) = [
        o for o in await orders_json(http, dydx_double, funded_trader) if o["clientId"] == "20"
    ]
    assert conditional["status"] == "UNTRIGGERED"

    dydx_double.set_oracle_price("ETH-USD", "2750")
    dydx_double.advance_blocks(3)
    (conditional,) = [
        o for o in await orders_json(http, dydx_double, funded_trader) if o["clientId"] == "20"
    ]
    assert conditional["status"] == "FILLED"
    assert (await subaccount_json(http, dydx_double, funded_trader))["openPerpetualPositions"] == {}


async def test_reduce_only_closes_without_flipping_and_refuses_the_position_direction(
    dydx_double: DydxDouble,
    client: NodeClient,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    dydx_double.pause_clock()
    height = dydx_double.height
    await open_long(client, funded_trader, height, "0.01")

    same_direction = short_term(
        funded_trader, 30, BUY, "0.01", "3100", height + 10, reduce_only=True
    )
    code, codespace, raw_log = answer(
        await place_with_api_key(client, funded_trader, same_direction)
    )
    assert (code, codespace) == (2001, "clob")
    assert raw_log.endswith("Reduce-only orders cannot increase the position size")
    eth = (await subaccount_json(http, dydx_double, funded_trader))["openPerpetualPositions"]
    assert eth["ETH-USD"]["size"] == "0.01"

    larger = short_term(funded_trader, 31, SELL, "0.02", "2900", height + 10, reduce_only=True)
    assert answer(await place_with_api_key(client, funded_trader, larger)) == (0, "", "")
    subaccount_ = await subaccount_json(http, dydx_double, funded_trader)
    assert subaccount_["openPerpetualPositions"] == {}
    body = await get_json(
        http,
        f"{dydx_double.indexer_url}/v4/perpetualPositions?"
        f"address={funded_trader.owner_address}&subaccountNumber=0",
    )
    assert [(p["market"], p["status"], p["side"]) for p in body["positions"]] == [
        ("ETH-USD", "CLOSED", "LONG")
    ]


async def test_repeated_client_id_gets_the_chains_answer(
    dydx_double: DydxDouble, client: NodeClient, funded_trader: FundedTrader
) -> None:
    dydx_double.pause_clock()
    height = dydx_double.height

    resting = short_term(funded_trader, 40, BUY, "0.01", "2000", height + 20, tif=GTT)
    assert answer(await place_with_api_key(client, funded_trader, resting)) == (0, "", "")
    same_block = short_term(funded_trader, 40, BUY, "0.01", "2001", height + 20, tif=GTT)
    code, codespace, _ = answer(await place_with_api_key(client, funded_trader, same_block))
    assert (code, codespace) == (20, "clob")

    filled = short_term(funded_trader, 41, BUY, "0.01", "3100", height + 10)
    assert answer(await place_with_api_key(client, funded_trader, filled)) == (0, "", "")
    again = short_term(funded_trader, 41, BUY, "0.01", "3100", height + 11)
    code, codespace, _ = answer(await place_with_api_key(client, funded_trader, again))
    assert (code, codespace) == (24, "clob")

    first = long_term(funded_trader, 42, SELL, "0.01", "5000")
    assert answer(await place_with_api_key(client, funded_trader, first)) == (0, "", "")
    second = long_term(funded_trader, 42, SELL, "0.01", "5100")
    code, codespace, raw_log = answer(await place_with_api_key(client, funded_trader, second))
    assert (code, codespace) == (3005, "clob")
    assert "Existing stateful order has higher-or-equal priority" in raw_log
    # The refused stateful order rolled back its sequence increment.
    assert await owner_sequence(client, funded_trader) == 1


async def test_timestamp_nonce_accepted_once(
    dydx_double: DydxDouble,
    client: NodeClient,
    channel: grpc.Channel,
    funded_trader: FundedTrader,
) -> None:
    nonce = int(time.time() * 1000)
    first = long_term(funded_trader, 50, SELL, "0.01", "5000")
    assert answer(await place_with_api_key(client, funded_trader, first, sequence=nonce)) == (
        0,
        "",
        "",
    )
    assert await owner_sequence(client, funded_trader) == 0  # timestamp nonces don't increment
    state = await asyncio.to_thread(
        accountplus_grpc.QueryStub(channel).AccountState,
        accountplus_query.AccountStateRequest(address=funded_trader.owner_address),
        timeout=5,
    )
    assert list(state.account_state.timestamp_nonce_details.timestamp_nonces) == [nonce]

    reused = long_term(funded_trader, 51, SELL, "0.01", "5000")
    response = await place_with_api_key(client, funded_trader, reused, sequence=nonce)
    assert answer(response) == (
        32,
        "sdk",
        f"timestamp nonce {nonce} rejected: incorrect account sequence",
    )
    stale = nonce - 60_000
    response = await place_with_api_key(client, funded_trader, reused, sequence=stale)
    assert answer(response) == (
        32,
        "sdk",
        f"timestamp nonce {stale} not within valid time window: incorrect account sequence",
    )
    response = await place_with_api_key(client, funded_trader, reused, sequence=nonce + 1)
    assert answer(response) == (0, "", "")
    response = await place_with_api_key(
        client, funded_trader, long_term(funded_trader, 52, SELL, "0.01", "5000"), sequence=5
    )
    assert answer(response) == (
        32,
        "sdk",
        "account sequence mismatch, expected 0, got 5: incorrect account sequence",
    )


async def test_rebroadcast_of_identical_bytes_is_refused_as_already_in_cache(
    dydx_double: DydxDouble,
    client: NodeClient,
    node: NodeServer,
    funded_trader: FundedTrader,
    http: aiohttp.ClientSession,
) -> None:
    options = TxOptions([funded_trader.authenticator_id], 0, funded_trader.account_number)
    tx = client.builder.build(
        api_wallet(funded_trader),
        place_order(long_term(funded_trader, 60, SELL, "0.01", "5000")),
        tx_options=options,
    )
    first = await blocking(client.broadcast, tx)
    second = await blocking(client.broadcast, tx)
    assert answer(first) == (0, "", "")
    assert answer(second) == (19, "sdk", "")
    assert first.tx_response.txhash == second.tx_response.txhash
    assert [r.code for r in node.broadcasts] == [0, 19]
    assert [r.processed for r in node.broadcasts] == [True, True]

    orders = await orders_json(http, dydx_double, funded_trader)
    assert [o["clientId"] for o in orders] == ["60"]
    assert await owner_sequence(client, funded_trader) == 1

    # Once in a block, the stateful order's transaction is visible through GetTx.
    dydx_double.advance_block()
    found = await blocking(client.query_transaction, first.tx_response.txhash)
    assert isinstance(found, Tx)
    assert found.SerializeToString() == tx.SerializeToString()


# --- fault injection --------------------------------------------------------------------------


async def test_reject_next_answers_the_given_error_without_processing(
    dydx_double: DydxDouble,
    client: NodeClient,
    channel: grpc.Channel,
    node: NodeServer,
    funded_trader: FundedTrader,
) -> None:
    height = await blocking(client.latest_block_height)
    the_order = short_term(funded_trader, 70, BUY, "0.01", "3100", height + 10)
    node.reject_next(1, 5001, "clob", "Block rate limit exceeded")
    response = await place_with_api_key(client, funded_trader, the_order)
    assert answer(response) == (5001, "clob", "Block rate limit exceeded")
    record = node.broadcasts[-1]
    assert (record.fault, record.processed, record.code) == ("reject", False, 5001)
    assert dydx_double.call(lambda: dydx_double.state.orders) == {}

    # Nothing entered the cache, so the very same bytes are accepted now.
    stub = service_pb2_grpc.ServiceStub(channel)
    request = service_pb2.BroadcastTxRequest(
        tx_bytes=record.tx_bytes, mode=service_pb2.BroadcastMode.BROADCAST_MODE_SYNC
    )
    assert answer(await asyncio.to_thread(stub.BroadcastTx, request, timeout=5)) == (0, "", "")


async def test_unavailable_aborts_with_grpc_unavailable(
    client: NodeClient, node: NodeServer, funded_trader: FundedTrader
) -> None:
    height = await blocking(client.latest_block_height)
    the_order = short_term(funded_trader, 71, BUY, "0.01", "3100", height + 10)
    node.unavailable(1)
    with pytest.raises(grpc.RpcError) as failure:
        await place_with_api_key(client, funded_trader, the_order, sequence=0)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert node.broadcasts[-1].fault == "unavailable"
    assert node.broadcasts[-1].status == "aborted"
    assert answer(await place_with_api_key(client, funded_trader, the_order, sequence=0)) == (
        0,
        "",
        "",
    )

    node.unavailable(1, method="Account")
    with pytest.raises(grpc.RpcError) as failure:
        await blocking(client.get_account, funded_trader.owner_address)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (await blocking(client.get_account, funded_trader.owner_address)).account_number


async def test_a_chosen_hang_holds_only_the_broadcasts_it_matches(
    client: NodeClient, channel: grpc.Channel, node: NodeServer, funded_trader: FundedTrader
) -> None:
    stub = service_pb2_grpc.ServiceStub(channel)

    def request(sequence: int, client_id: int) -> service_pb2.BroadcastTxRequest:
        tx = client.builder.build(
            api_wallet(funded_trader, sequence),
            place_order(long_term(funded_trader, client_id, SELL, "0.01", "5000")),
            tx_options=TxOptions(
                [funded_trader.authenticator_id], sequence, funded_trader.account_number
            ),
        )
        return service_pb2.BroadcastTxRequest(
            tx_bytes=tx.SerializeToString(), mode=service_pb2.BroadcastMode.BROADCAST_MODE_SYNC
        )

    node.hang(2.0, process_first=False, when=cancelling())
    node.hang(2.0, process_first=False, when=placing(Order.CONDITION_TYPE_TAKE_PROFIT))
    # A plain long-term order matches neither: answered at once, both hangs still queued.
    assert answer(await asyncio.to_thread(stub.BroadcastTx, request(0, 90), timeout=2)) == (
        0,
        "",
        "",
    )
    node.hang(2.0, process_first=False, when=placing(flags=LONG_TERM))
    with pytest.raises(grpc.RpcError) as failure:
        await asyncio.to_thread(stub.BroadcastTx, request(1, 91), timeout=0.2)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    passed, held = node.wait_for_broadcasts(2, timeout=2)
    assert (passed.fault, passed.accepted) == (None, True)
    # What a held broadcast carries is known before CheckTx runs.
    assert (held.fault, held.processed, held.status) == ("hang", False, "cancelled")
    (message,) = held.messages
    assert isinstance(message, MsgPlaceOrder)
    assert message.order.order_id.client_id == 91
    node.clear_faults()


async def test_hang_needs_a_client_side_deadline(
    client: NodeClient, channel: grpc.Channel, node: NodeServer, funded_trader: FundedTrader
) -> None:
    options = TxOptions([funded_trader.authenticator_id], 0, funded_trader.account_number)
    tx = client.builder.build(
        api_wallet(funded_trader),
        place_order(long_term(funded_trader, 80, SELL, "0.01", "5000")),
        tx_options=options,
    )
    request = service_pb2.BroadcastTxRequest(
        tx_bytes=tx.SerializeToString(), mode=service_pb2.BroadcastMode.BROADCAST_MODE_SYNC
    )
    stub = service_pb2_grpc.ServiceStub(channel)

    # The node accepted the tx but answers late: the deadline fires, the retry meets the cache.
    node.hang(2.0)
    started = time.perf_counter()
    with pytest.raises(grpc.RpcError) as failure:
        await asyncio.to_thread(stub.BroadcastTx, request, timeout=0.2)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.perf_counter() - started < 1.0
    (hung,) = node.wait_for_broadcasts(1, timeout=2)
    assert (hung.fault, hung.status, hung.processed, hung.code) == ("hang", "cancelled", True, 0)
    retry = await asyncio.to_thread(stub.BroadcastTx, request, timeout=2)
    assert answer(retry) == (19, "sdk", "")
    assert await owner_sequence(client, funded_trader) == 1

    # Delay before processing: an abandoned call never reaches the chain.
    second = client.builder.build(
        api_wallet(funded_trader, 1),
        place_order(long_term(funded_trader, 81, SELL, "0.01", "5000")),
        tx_options=TxOptions([funded_trader.authenticator_id], 1, funded_trader.account_number),
    )
    request = service_pb2.BroadcastTxRequest(
        tx_bytes=second.SerializeToString(), mode=service_pb2.BroadcastMode.BROADCAST_MODE_SYNC
    )
    node.hang(2.0, process_first=False)
    with pytest.raises(grpc.RpcError) as failure:
        await asyncio.to_thread(stub.BroadcastTx, request, timeout=0.2)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    abandoned = node.wait_for_broadcasts(3, timeout=2)[-1]
    assert (abandoned.status, abandoned.processed) == ("cancelled", False)
    assert answer(await asyncio.to_thread(stub.BroadcastTx, request, timeout=2)) == (0, "", "")
