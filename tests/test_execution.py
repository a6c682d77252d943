"""Alert → order → fill → Telegram, end to end through the real web app, a real arq worker,
PostgreSQL, Redis, the dYdX double (real dydx-v4-client signing) and the Telegram double."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from v4_proto.dydxprotocol.clob.order_pb2 import Order as ProtoOrder

from core.config import Settings
from core.domain import AlertState, OrderPurpose, OrderState
from tests.doubles.dydx.double import DydxDouble
from tests.doubles.telegram import TelegramDouble
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    post_alert,
    running_web,
    running_worker,
    wait_alert,
)


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
) -> Settings:
    return make_settings(
        **telegram_env,
        **dydx_env,
        webhook_ip_allowlist="*",
        alert_rate_per_token=100_000,
        alert_rate_per_ip=100_000,
    )


@pytest.fixture
async def web(
    settings: Settings, live_sessionmaker: Maker, redis: Any
) -> AsyncIterator[TestClient]:
    async with running_web(settings) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, web: TestClient) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


async def trader(
    maker: Maker,
    settings: Settings,
    telegram: TelegramDouble,
    dydx: DydxDouble,
    **kw: Any,
) -> Trader:
    return await add_trader(maker, settings, telegram, dydx, **kw)


def placed_orders(dydx: DydxDouble) -> list[ProtoOrder]:
    """Every MsgPlaceOrder the node double accepted."""
    return [
        message.order
        for record in dydx.node.broadcasts
        if record.accepted
        for message in record.messages
        if type(message).__name__ == "MsgPlaceOrder"
    ]


async def test_an_alert_becomes_one_order_a_fill_and_a_message(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    answer = await post_alert(web, me, size="0.1", price="2999.5", strategy="ema-cross")
    row = await wait_alert(live_sessionmaker, answer["id"])
    assert row.state is AlertState.EXECUTED, row.reason

    (record,) = [r for r in dydx_double.node.broadcasts if r.accepted]
    assert record.selected_authenticators == (me.dydx.authenticator_id,)
    (order,) = placed_orders(dydx_double)
    assert order.order_id.subaccount_id.owner == me.dydx.owner_address
    assert order.order_id.subaccount_id.number == 0
    assert order.order_id.clob_pair_id == 1  # ETH-USD
    assert order.order_id.order_flags == 0  # short-term
    assert order.side == ProtoOrder.Side.SIDE_BUY
    assert order.quantums == 100_000_000  # 0.1 ETH at atomic resolution -9
    assert order.subticks == 3_030_000_000  # oracle 3000 + 1 % slippage, on the 0.1 tick
    assert not order.reduce_only
    assert order.time_in_force == ProtoOrder.TimeInForce.TIME_IN_FORCE_IOC
    assert record.height < order.good_til_block <= record.height + 40

    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED
    assert ledger.purpose is OrderPurpose.ENTRY
    assert ledger.filled_size == Decimal("0.1")
    assert ledger.average_price == Decimal("3000")
    assert ledger.fee == Decimal("0.15")  # 5 bps taker on $300
    assert ledger.client_id == order.order_id.client_id
    assert ledger.tx_bytes == record.tx_bytes

    message = await me.chat.next_message(timeout=10)
    assert "Filled" in message.text
    assert "ema-cross" in message.text
    assert "Bought 0.1 ETH-USD at $3,000.00" in message.text
    assert "Fees: $0.15" in message.text
    assert "Slippage: +0.017% vs $2,999.50" in message.text
    assert "Position: LONG 0.1 ETH-USD" in message.text
