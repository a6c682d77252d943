"""One-cancels-other through the real-time monitor: a take-profit fill the Indexer WebSocket
reports cancels its sibling stop-loss within a second or two, well before the once-a-second
cron could see it (a resting bracket is due for the cron only every 5 s).

The worker runs without the ``advance_brackets`` cron, so the monitor is the only path left
that can cancel the sibling: the cancel arriving at all proves the path, and its timing is
measured on the doubles' own monotonic clock (the block that delivers the fill, the node's
receipt of the ``MsgCancelOrder``). Real web app, arq worker, PostgreSQL, Redis, the dYdX
double with the real dydx-v4-client, and the Telegram double.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgCancelOrder

from core.db.models import Order
from core.domain.states import AlertState, BracketState, OrderPurpose, OrderState
from core.exchange.provider import ExchangeProvider
from core.exchange.stream import SubaccountRef
from core.runtime.config import Settings
from doubles.dydx.double import DydxDouble
from doubles.dydx.state import SubaccountUpdate
from doubles.telegram import TelegramDouble
from tests.e2e.test_protection import brackets_of, said
from tests.protection_checks import MARKET, assert_invariant, holds, until, venue
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    post_alert,
    running_worker,
    wait_alert,
)
from workers.settings import WorkerSettings
from workers.worker import TradingWorker

#: The cron that advances due brackets: left out where the monitor must do the work alone.
ADVANCE_CRON = "cron:advance_brackets"


class FillClock:
    """When (``perf_counter_ns``, the node's clock) the double delivered each fill of an
    order, by the order's client id: the moment its block's events go out."""

    def __init__(self, double: DydxDouble) -> None:
        self._double = double
        self.at: dict[int, int] = {}
        self._unsubscribe = double.call(double.state.subscribe, self._on_event)

    def _on_event(self, event: object) -> None:
        if not isinstance(event, SubaccountUpdate) or not event.fills:
            return
        now = time.perf_counter_ns()
        for fill in event.fills:
            record = self._double.state.orders.get(fill.order_id)
            if record is not None:
                self.at.setdefault(record.order.order_id.client_id, now)

    def close(self) -> None:
        self._double.call(self._unsubscribe)


def cancels_of(double: DydxDouble, client_id: int) -> list[int]:
    """Arrival times (``perf_counter_ns``) of every ``MsgCancelOrder`` of ``client_id``."""
    return [
        record.received_perf_ns
        for record in list(double.node.broadcasts)
        for message in record.messages
        if isinstance(message, MsgCancelOrder) and message.order_id.client_id == client_id
    ]


def places(double: DydxDouble) -> int:
    """How many ``MsgPlaceOrder`` the node accepted."""
    return sum(
        type(message).__name__ == "MsgPlaceOrder"
        for record in list(double.node.broadcasts)
        if record.accepted
        for message in record.messages
    )


async def legs_of(maker: Maker, me: Trader) -> dict[OrderPurpose, Order]:
    """The trader's current legs by purpose (one bracket)."""
    return {
        order.purpose: order
        for order in await orders_of(maker, me.user_id)
        if order.bracket_id is not None
    }


async def subscribed(worker: TradingWorker, me: Trader) -> None:
    """Wait until the worker's monitor has the trader's subaccount live on its WebSocket."""
    assert me.dydx is not None
    ref = SubaccountRef(me.dydx.owner_address, me.dydx.subaccount_number)

    async def live() -> bool:
        monitor = worker.ctx.get("monitor")
        return monitor is not None and monitor.stream.is_live(ref)

    await until(live, within=15)


def without_advance_cron() -> list[Any]:
    """The production crons but the bracket-advancing one."""
    return [c for c in WorkerSettings.cron_jobs if c.name != ADVANCE_CRON]


@pytest.fixture
def fill_clock(dydx_double: DydxDouble) -> Iterator[FillClock]:
    clock = FillClock(dydx_double)
    yield clock
    clock.close()


@pytest.mark.parametrize(
    ("action", "take_profit_price"), [("buy", "3100"), ("sell", "2900")], ids=["long", "short"]
)
async def test_a_take_profit_fill_cancels_its_stop_loss_through_the_monitor_within_two_seconds(
    action: str,
    take_profit_price: str,
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    fill_clock: FillClock,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    async with running_worker(settings, cron_jobs=without_advance_cron()) as worker:
        answer = await post_alert(web, me, action=action, tp_pct="2", sl_pct="1")
        assert (await wait_alert(live_sessionmaker, answer["id"])).state is AlertState.EXECUTED
        await until(lambda: holds(exchange, Decimal("0.1"), 2))
        await assert_invariant(exchange)
        legs = await legs_of(live_sessionmaker, me)
        take, stop = legs[OrderPurpose.TAKE_PROFIT], legs[OrderPurpose.STOP_LOSS]
        placed = places(dydx_double)
        await subscribed(worker, me)

        dydx_double.set_oracle_price(MARKET, take_profit_price)

        async def stop_cancelled() -> bool:
            return bool(cancels_of(dydx_double, stop.client_id))

        await until(stop_cancelled, within=15)
        filled_at = fill_clock.at[take.client_id]
        (cancelled_at,) = cancels_of(dydx_double, stop.client_id)
        took = (cancelled_at - filled_at) / 1e9
        # The 5 s polling (a resting bracket's recheck) could not have done it this soon.
        assert 0 < took < 2, f"fill -> cancel took {took:.3f} s"

        await until(lambda: holds(exchange, Decimal(0), 0), within=15)
        await assert_invariant(exchange)
        text = await said(me, "Its stop-loss was cancelled")
        assert "Take-profit hit" in text
        legs = await legs_of(live_sessionmaker, me)
        assert legs[OrderPurpose.TAKE_PROFIT].state is OrderState.FILLED
        assert legs[OrderPurpose.STOP_LOSS].state is OrderState.CANCELED
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        assert bracket.state is BracketState.CLOSED
        assert places(dydx_double) == placed  # nothing placed after the fill
        assert len(cancels_of(dydx_double, stop.client_id)) == 1
