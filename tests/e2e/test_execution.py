"""Alert → order → fill → Telegram, end to end through the real web app, a real arq worker,
PostgreSQL, Redis, the dYdX double (real dydx-v4-client signing) and the Telegram double."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from v4_proto.dydxprotocol.clob.order_pb2 import Order as ProtoOrder

from core.db.models import Fill, Notification
from core.db.repositories.execution import ExecutionRepository
from core.domain.states import AlertState, OrderPurpose, OrderState
from core.exchange.factory import create_exchange_provider
from core.runtime.config import Settings
from core.services.execution.pipeline import ExecutionService
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    placed_orders,
    post_alert,
    running_web,
    running_worker,
    user_row,
    wait_alert,
)


async def trader(
    maker: Maker,
    settings: Settings,
    telegram: TelegramDouble,
    dydx: DydxDouble,
    **kw: Any,
) -> Trader:
    return await add_trader(maker, settings, telegram, dydx, **kw)


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
    assert ledger.signed_at is not None
    assert ledger.submitted_at is not None
    assert ledger.accepted_at is not None
    assert ledger.signed_at <= ledger.submitted_at <= ledger.accepted_at
    # The acceptance mark is optimistic: a late one never moves a final order back.
    store = ExecutionRepository(settings.database_url.get_secret_value())
    try:
        late = datetime.now(UTC)
        assert not await store.mark_submitted(
            ledger.id, submitted_at=late, accepted_at=late, tx_hash=ledger.tx_hash or ""
        )
    finally:
        await store.close()
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED

    message = await me.chat.next_message(timeout=10)
    assert "Filled" in message.text
    assert "ema-cross" in message.text
    assert "Bought 0.1 ETH-USD at $3,000.00" in message.text
    assert "Fees: $0.15" in message.text
    assert "Price: 0.017% worse than $2,999.50 (the alert's price)" in message.text
    assert "Position: LONG 0.1 ETH-USD" in message.text


async def test_an_order_the_stream_tells_in_full_is_recorded_without_asking_the_indexer(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    first = await post_alert(web, me, size="0.1")
    assert (await wait_alert(live_sessionmaker, first["id"])).state is AlertState.EXECUTED
    assert "Bought 0.1 ETH-USD" in (await me.chat.next_message(timeout=10)).text
    # The first order made the monitor stream the subaccount.
    channel_id = f"{me.dydx.owner_address}/0"
    indexer = dydx_double.indexer
    for _ in range(100):
        if dydx_double.call(lambda: indexer.subscribed("v4_subaccounts", channel_id)):
            break
        await asyncio.sleep(0.05)
    looks = "/v4/orders/{order_id}"
    before = dydx_double.call(lambda: indexer.requests[looks])

    second = await post_alert(web, me, size="0.2", price="3000", strategy="streamed")
    row = await wait_alert(live_sessionmaker, second["id"])
    assert row.state is AlertState.EXECUTED, row.reason
    message = await me.chat.next_message(timeout=10)
    # Recorded from the stream's batch: no look at the order on the Indexer.
    assert dydx_double.call(lambda: indexer.requests[looks]) == before
    assert "Bought 0.2 ETH-USD at $3,000.00" in message.text
    assert "streamed" in message.text
    assert "Position: LONG 0.3 ETH-USD" in message.text
    ledger = await orders_of(live_sessionmaker, me.user_id)
    assert [(o.state, o.filled_size, o.fee) for o in ledger] == [
        (OrderState.FILLED, Decimal("0.1"), Decimal("0.15")),
        (OrderState.FILLED, Decimal("0.2"), Decimal("0.30")),
    ]
    async with live_sessionmaker() as session:
        fills = (await session.scalars(select(Fill).order_by(Fill.id))).all()
    assert [(f.size, f.liquidity, f.realized_pnl) for f in fills] == [
        (Decimal("0.1"), "TAKER", Decimal("-0.15")),
        (Decimal("0.2"), "TAKER", Decimal("-0.30")),
    ]


async def test_size_pct_is_a_share_of_the_equity_the_exchange_reports(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    dydx_double.set_oracle_price("ETH-USD", "2500")
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double, usdc="4000")
    answer = await post_alert(web, me, size=None, size_pct="25")
    assert (await wait_alert(live_sessionmaker, answer["id"])).state is AlertState.EXECUTED
    (order,) = placed_orders(dydx_double)
    assert order.quantums == 400_000_000  # 25 % of $4,000 at $2,500 = 0.4 ETH
    answer = await post_alert(web, me, size=None, size_usd="500", action="sell")
    assert (await wait_alert(live_sessionmaker, answer["id"])).state is AlertState.EXECUTED
    second = placed_orders(dydx_double)[1]
    assert second.quantums == 200_000_000  # $500 at $2,500
    assert second.side == ProtoOrder.Side.SIDE_SELL
    assert second.reduce_only  # a smaller sell while long only reduces


async def test_a_risk_limit_refuses_before_anything_is_sent_and_says_why(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(
        live_sessionmaker,
        settings,
        telegram_double,
        dydx_double,
        prefs={"max_notional_usd": "100"},
    )
    answer = await post_alert(web, me, size="0.1")
    row = await wait_alert(live_sessionmaker, answer["id"])
    assert row.state is AlertState.FAILED
    assert dydx_double.node.broadcasts == []
    assert await orders_of(live_sessionmaker, me.user_id) == []
    message = await me.chat.next_message(timeout=10)
    assert "Not executed" in message.text
    assert "the order is worth $300.00, above your limit of $100.00 per order" in message.text


async def test_close_sends_a_reduce_only_order_for_the_whole_position(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    first = await post_alert(web, me, size="0.2")
    await wait_alert(live_sessionmaker, first["id"])
    dydx_double.set_oracle_price("ETH-USD", "3100")
    await asyncio.sleep(1.2)
    closing = await post_alert(web, me, action="close", size=None)
    assert (await wait_alert(live_sessionmaker, closing["id"])).state is AlertState.EXECUTED
    close_order = placed_orders(dydx_double)[1]
    assert close_order.side == ProtoOrder.Side.SIDE_SELL
    assert close_order.reduce_only
    assert close_order.quantums == 200_000_000
    ledger = (await orders_of(live_sessionmaker, me.user_id))[1]
    assert ledger.purpose is OrderPurpose.CLOSE
    assert ledger.realized_pnl == Decimal("19.69")  # (3100 - 3000) * 0.2 - $0.31 fee
    await me.chat.next_message(timeout=10)
    message = await me.chat.next_message(timeout=10)
    assert "Sold 0.2 ETH-USD at $3,100.00" in message.text
    assert "Realized PnL: +$19.69" in message.text
    assert "Position: flat on ETH-USD" in message.text


async def test_paper_mode_fills_without_any_broadcast(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(
        live_sessionmaker,
        settings,
        telegram_double,
        dydx_double,
        prefs={"paper": True},
        with_key=False,
    )
    answer = await post_alert(web, me, size="0.5")
    row = await wait_alert(live_sessionmaker, answer["id"])
    assert row.state is AlertState.EXECUTED, row.reason
    assert dydx_double.node.broadcasts == []
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.paper
    assert ledger.state is OrderState.FILLED
    assert ledger.average_price == Decimal("3001.5")  # oracle + 5 bps simulated slippage
    message = await me.chat.next_message(timeout=10)
    assert message.text.startswith("📝 PAPER")
    assert "Bought 0.5 ETH-USD at $3,001.50" in message.text


async def test_a_permanent_refusal_is_rejected_once_and_explained(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    dydx_double.node.reject_next(code=3007, codespace="clob", log="order is undercollateralized")
    answer = await post_alert(web, me, size="0.1")
    row = await wait_alert(live_sessionmaker, answer["id"])
    assert row.state is AlertState.FAILED
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.REJECTED
    assert (ledger.codespace, ledger.exchange_code) == ("clob", 3007)
    message = await me.chat.next_message(timeout=10)
    assert "Order refused by dYdX" in message.text
    assert "not enough free collateral" in message.text
    await asyncio.sleep(1.5)
    assert len(dydx_double.node.broadcasts) == 1  # never retried


async def test_a_hanging_node_hits_the_deadline_and_the_order_is_reconciled(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    # The node takes the order, then answers only long after our deadline.
    dydx_double.node.hang(30, process_first=True)
    answer = await post_alert(web, me, size="0.1")
    row = await wait_alert(live_sessionmaker, answer["id"], within=40)
    assert row.state is AlertState.EXECUTED
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED
    assert len(placed_orders(dydx_double)) == 1
    # The monitor may record the fill (from the Indexer) before our deadline fires.
    for _ in range(100):
        if dydx_double.node.broadcasts[0].status != "pending":
            break
        await asyncio.sleep(0.1)
    statuses = [record.status for record in dydx_double.node.broadcasts]
    assert statuses[0] == "cancelled"  # our deadline fired on the hanging call
    message = await me.chat.next_message(timeout=10)
    assert "Bought 0.1 ETH-USD" in message.text


async def test_an_alert_too_old_when_its_job_runs_expires_and_the_user_is_told(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    redis: Any,
) -> None:
    settings = make_settings(
        **telegram_env, **dydx_env, webhook_ip_allowlist="*", alert_max_lag_seconds=2
    )
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    async with running_web(settings) as web:
        answer = await post_alert(web, me, size="0.1")
        await asyncio.sleep(3)  # no worker yet: the job waits in Redis
        async with running_worker(settings):
            row = await wait_alert(live_sessionmaker, answer["id"])
            message = await me.chat.next_message(timeout=10)
    assert row.state is AlertState.EXPIRED
    assert dydx_double.node.broadcasts == []
    assert "Expired" in message.text
    assert "over the 2 s limit" in message.text


async def test_a_daily_loss_limit_hit_pauses_trading_and_says_so(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(
        live_sessionmaker,
        settings,
        telegram_double,
        dydx_double,
        prefs={"daily_loss_limit_usd": "10"},
    )
    first = await post_alert(web, me, size="0.2")
    await wait_alert(live_sessionmaker, first["id"])
    dydx_double.set_oracle_price("ETH-USD", "2900")
    await asyncio.sleep(1.2)  # the adapter's oracle cache is at most a second old
    closing = await post_alert(web, me, action="close", size=None)
    await wait_alert(live_sessionmaker, closing["id"])
    texts = [(await me.chat.next_message(timeout=10)).text for _ in range(3)]
    assert (await user_row(live_sessionmaker, me.user_id)).paused
    assert any("Trading paused" in text and "$20.59" in text for text in texts)
    async with live_sessionmaker() as session:
        realized = await session.scalar(select(func.sum(Fill.realized_pnl)))
        sent = await session.scalar(select(func.count()).select_from(Notification))
    assert realized == Decimal("-20.59")  # -(100 * 0.2) - $0.29 fee - the entry's $0.30 fee
    assert sent == 3


async def test_take_profit_and_stop_loss_follow_the_fill_and_cancel_each_other(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    answer = await post_alert(web, me, size="0.1", tp_pct="2", sl_pct="1")
    assert (await wait_alert(live_sessionmaker, answer["id"])).state is AlertState.EXECUTED
    for _ in range(100):  # protection is placed right after the entry's fill is recorded
        if len(placed_orders(dydx_double)) == 3:
            break
        await asyncio.sleep(0.05)
    # The stop-loss goes first: if the chain refuses it, nothing else is left to cancel.
    _entry, stop, take = placed_orders(dydx_double)
    assert take.order_id.order_flags == stop.order_id.order_flags == 32  # conditional
    assert take.condition_type == ProtoOrder.ConditionType.CONDITION_TYPE_TAKE_PROFIT
    assert stop.condition_type == ProtoOrder.ConditionType.CONDITION_TYPE_STOP_LOSS
    assert take.conditional_order_trigger_subticks == 3_060_000_000  # fill 3000 + 2 %
    assert stop.conditional_order_trigger_subticks == 2_970_000_000  # fill 3000 - 1 %
    assert take.reduce_only
    assert stop.reduce_only
    assert take.side == stop.side == ProtoOrder.Side.SIDE_SELL
    texts = [(await me.chat.next_message(timeout=10)).text for _ in range(2)]
    assert any("take-profit $3,060.00 and stop-loss $2,970.00 placed" in t for t in texts)

    dydx_double.set_oracle_price("ETH-USD", "3070")  # the take-profit triggers
    message = await me.chat.next_message(timeout=40)
    assert "Take-profit hit" in message.text
    # Entered at 3,000, sold at 3,070: 0.1 × 70 less the 0.05 % taker fee (0.15).
    assert "Realized PnL: +$6.85" in message.text
    assert "Position: flat on ETH-USD" in message.text
    orders = {o.purpose: o for o in await orders_of(live_sessionmaker, me.user_id)}
    assert orders[OrderPurpose.TAKE_PROFIT].state is OrderState.FILLED
    for _ in range(100):
        orders = {o.purpose: o for o in await orders_of(live_sessionmaker, me.user_id)}
        if orders[OrderPurpose.STOP_LOSS].state is OrderState.CANCELED:
            break
        await asyncio.sleep(0.1)
    assert orders[OrderPurpose.STOP_LOSS].state is OrderState.CANCELED
    cancels = [
        record
        for record in dydx_double.node.broadcasts
        if record.accepted and "MsgCancelOrder" in record.type_urls[0]
    ]
    assert len(cancels) == 1


async def test_an_alert_no_run_finished_is_expired_by_the_reconciliation(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
) -> None:
    me = await trader(live_sessionmaker, settings, telegram_double, dydx_double)
    answer = await post_alert(web, me, size="0.1")  # no worker: nobody runs it
    exchanges = create_exchange_provider(live_sessionmaker, settings)
    store = ExecutionRepository(settings.database_url.get_secret_value())
    try:
        service = ExecutionService(
            live_sessionmaker, exchanges, store, max_lag=timedelta(seconds=60)
        )
        assert await service.expire_stuck_alerts(older_than=timedelta(0)) == 1
        assert await service.expire_stuck_alerts(older_than=timedelta(0)) == 0
    finally:
        await exchanges.close()
        await store.close()
    row = await wait_alert(live_sessionmaker, answer["id"])
    assert row.state is AlertState.EXPIRED
    assert row.reason == "no order was placed in time"
    assert dydx_double.node.broadcasts == []
