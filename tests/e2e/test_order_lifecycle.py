"""Every order reaches a final state in bounded time and the trader hears once (issue #11):
a short-term order while the Indexer lags 20 s, a stateful order that fails in its block, and
a stateful order whose signature the chain refuses as out of date. End to end through the real
web app, a real arq worker, PostgreSQL, Redis and the dYdX and Telegram doubles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from core.domain.states import AlertState, OrderState
from core.runtime.config import Settings
from core.services.execution.settle import MAX_RESIGNS
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.trading_stack import (
    Maker,
    add_trader,
    orders_of,
    placed_orders,
    post_alert,
    wait_alert,
)

#: The chain's answer to a timestamp nonce outside ±30 s of the block time.
STALE_NONCE_LOG = (
    "timestamp nonce 1767225600000 not within valid time window: incorrect account sequence"
)


async def _until(predicate: Callable[[], bool], within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _only_message(chat: Any) -> str:
    """The one message the trader got: waits for it, then makes sure no second one comes."""
    message = await chat.next_message(timeout=15)
    await asyncio.sleep(2)
    assert len(chat.bot_messages) == 1, [m.text for m in chat.bot_messages]
    text: str = message.text
    return text


async def test_a_market_order_filled_while_the_indexer_lags_20_s_is_reported_filled(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    dydx_double.indexer.lag = 20.0
    answer = await post_alert(web, me, size="0.1")
    await _until(lambda: len(placed_orders(dydx_double)) == 1)
    (sent,) = placed_orders(dydx_double)
    # The node passes the order's good_til_block long before the Indexer shows the fill:
    # the node's height alone would call this filled order expired.
    await _until(lambda: dydx_double.height > sent.good_til_block + 3, within=30)
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert not ledger.state.is_final

    row = await wait_alert(live_sessionmaker, answer["id"], within=60)
    assert row.state is AlertState.EXECUTED, row.reason
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED
    text = await _only_message(me.chat)
    assert "Bought 0.1 ETH-USD" in text
    assert "Not filled" not in text


async def test_a_stateful_order_failing_in_its_block_is_rejected_with_the_chains_reason(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    dydx_double.set_stateful_orders_next_block()
    dydx_double.pause_clock()
    try:
        # A resting limit buy: 1.6 ETH needs 96 USDC of initial margin, fine on 10,000 ...
        answer = await post_alert(web, me, size="1.6", order_type="limit", price="2990")
        await _until(lambda: any(r.accepted for r in dydx_double.node.broadcasts))
        # ... until, before its block, the owner opens 162 ETH in the web app (9,720 USDC of
        # margin and 243 of fees: 37 left).
        result, _ = dydx_double.external_trade(me.dydx.owner_address, "ETH-USD", "BUY", "162")
        assert result.ok
        dydx_double.advance_block()
    finally:
        dydx_double.resume_clock()

    row = await wait_alert(live_sessionmaker, answer["id"], within=30)
    assert row.state is AlertState.FAILED
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.REJECTED
    assert (ledger.codespace, ledger.exchange_code) == ("clob", 3007)
    text = await _only_message(me.chat)
    assert "Order refused by dYdX" in text
    assert "not enough free collateral" in text
    assert placed_orders(dydx_double)  # CheckTx took it: only the block result told


async def test_a_stateful_order_whose_nonce_is_refused_as_stale_is_signed_again_and_placed(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    # The first send and the byte-for-byte resend both meet a nonce out of the window.
    dydx_double.node.reject_next(2, code=32, codespace="sdk", log=STALE_NONCE_LOG)
    answer = await post_alert(web, me, size="0.1", order_type="limit", price="3000")
    row = await wait_alert(live_sessionmaker, answer["id"], within=30)
    assert row.state is AlertState.EXECUTED, row.reason

    records = dydx_double.node.broadcasts
    assert [r.code for r in records[:2]] == [32, 32]
    assert records[0].tx_hash == records[1].tx_hash  # resent byte for byte first
    (placed,) = placed_orders(dydx_double)  # then signed again: one order on chain
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED
    assert ledger.client_id == placed.order_id.client_id  # the same order id, reused
    assert ledger.tx_hash != records[0].tx_hash
    assert ledger.tx_hash == next(r.tx_hash for r in records if r.accepted)
    text = await _only_message(me.chat)
    assert "Bought 0.1 ETH-USD" in text


async def test_a_signature_refused_as_stale_every_time_fails_after_bounded_resigning(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    dydx_double.node.reject_next(100, code=32, codespace="sdk", log=STALE_NONCE_LOG)
    try:
        answer = await post_alert(web, me, size="0.1", order_type="limit", price="3000")
        row = await wait_alert(live_sessionmaker, answer["id"], within=30)
    finally:
        dydx_double.node.clear_faults()
    assert row.state is AlertState.FAILED
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.REJECTED
    signatures = {r.tx_hash for r in dydx_double.node.broadcasts}
    assert len(signatures) == 1 + MAX_RESIGNS  # the first signature and each re-signing
    assert not placed_orders(dydx_double)
    text = await _only_message(me.chat)
    assert "kept refusing the order's signature as out of date" in text
    assert "nothing was placed" in text


async def test_a_placed_stateful_order_is_not_signed_again_while_nothing_proves_it_absent(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    """A node without a transaction index finds nothing, and a resend of bytes already used
    meets "nonce rejected": neither proves the order absent. While the Indexer lags, the
    order is not signed again (its id, filled and removed, would place a second order)."""
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    dydx_double.node.tx_index = False
    dydx_double.indexer.lag = 60.0
    try:
        answer = await post_alert(web, me, size="0.1", order_type="limit", price="3000")
        await _until(lambda: len(dydx_double.node.broadcasts) >= 1)
        dydx_double.node.reject_next(5, code=32, codespace="sdk", log=STALE_NONCE_LOG)
        await asyncio.sleep(6)  # GetTx "not found", the resend refused as stale, many looks
        assert len(placed_orders(dydx_double)) == 1
        assert len({r.tx_hash for r in dydx_double.node.broadcasts}) == 1  # never re-signed
        dydx_double.node.clear_faults()
        dydx_double.indexer.lag = 0.0  # the Indexer catches up and shows the fill
        row = await wait_alert(live_sessionmaker, answer["id"], within=30)
    finally:
        dydx_double.node.tx_index = True
        dydx_double.node.clear_faults()
        dydx_double.indexer.lag = 0.0
    assert row.state is AlertState.EXECUTED, row.reason
    assert len(placed_orders(dydx_double)) == 1
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED
    text = await _only_message(me.chat)
    assert "Bought 0.1 ETH-USD" in text
