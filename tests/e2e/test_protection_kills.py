"""A ``tv2dydx worker`` SIGKILLed at every step of a bracket (issue #11, fault tests): the
entry in flight, the entry filled before the legs, the stop-loss placed with the take-profit
in flight, both legs resting, and a take-profit filled before its stop-loss was cancelled.
Real web app, a worker process, PostgreSQL, Redis, the dYdX double with the real
dydx-v4-client, and the Telegram double.

The node holds the one broadcast of the step (``hang(when=...)``) so the worker dies there;
faults are cleared and a new worker started. Each test then asserts the invariant: while a
position is open and its owner asked for a stop-loss, resting reduce-only stop-losses cover
its whole size; no leg outlives its position; every change of protection reaches the trader
exactly once. And each leg is on the chain exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient
from v4_proto.dydxprotocol.clob.order_pb2 import Order as ProtoOrder
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgCancelOrder, MsgPlaceOrder

from core.domain.states import BracketState, OrderPurpose, OrderState
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.notifications import CLAIM_LEASE
from core.services.protection.step import RESTING_RECHECK
from doubles.dydx.double import DydxDouble
from doubles.dydx.node import BroadcastMatch, BroadcastRecord
from doubles.dydx.orders import cancelling, placing
from doubles.telegram import TelegramDouble
from tests.e2e.test_cli import bare_env
from tests.e2e.test_execution_faults import WorkerProcess
from tests.e2e.test_protection import brackets_of, said, texts_of
from tests.e2e.test_protection_faults import PAST_TAKE_PROFIT, chain_of
from tests.e2e.test_protection_monitor import legs_of
from tests.protection_checks import MARKET, assert_invariant, holds, protection, until, venue
from tests.trading_stack import Maker, Trader, add_trader, orders_of, post_alert

ENTRY = ProtoOrder.CONDITION_TYPE_UNSPECIFIED
TAKE_PROFIT = ProtoOrder.CONDITION_TYPE_TAKE_PROFIT
STOP_LOSS = ProtoOrder.CONDITION_TYPE_STOP_LOSS
#: Longer than any test: a held broadcast is only ended by the kill.
HELD = 300
#: Every retry of the held broadcast is held too (the product gives up on a broadcast after
#: 3 s), so a slow machine cannot let the step go on before the kill.
RETRIES = 20
SIZE = Decimal("0.1")


@pytest.fixture
def worker_process(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(bare_env({**base_env, **telegram_env, **dydx_env}))
    yield process
    process.stop()


# ------------------------------------------------------------------ helpers


def placements(double: DydxDouble) -> Counter[int]:
    """Orders the node accepted, by condition type (entry, take-profit, stop-loss)."""
    return Counter(
        message.order.condition_type
        for record in double.node.broadcasts
        if record.accepted
        for message in record.messages
        if isinstance(message, MsgPlaceOrder)
    )


def accepted_cancels(double: DydxDouble, client_id: int) -> int:
    """Cancels of ``client_id`` the node accepted."""
    return sum(
        isinstance(message, MsgCancelOrder) and message.order_id.client_id == client_id
        for record in double.node.broadcasts
        if record.accepted
        for message in record.messages
    )


async def kill_when_held(
    double: DydxDouble, worker: WorkerProcess, when: BroadcastMatch, *, processed: bool
) -> BroadcastRecord:
    """SIGKILL the worker once the node holds a broadcast ``when`` matches (processed on the
    chain first, or not at all); then clear the faults so the next worker is answered."""
    held: list[BroadcastRecord] = []

    async def holding() -> bool:
        held[:] = [r for r in double.node.broadcasts if r.fault == "hang" and when(r.messages)]
        return bool(held) and held[0].processed is processed

    await until(holding, within=60)
    worker.kill()
    double.node.clear_faults()
    return held[0]


def said_once(me: Trader, fragment: str) -> None:
    """The trader was told ``fragment`` exactly once."""
    count = sum(fragment in text for text in texts_of(me))
    assert count == 1, f"{fragment!r} said {count} times: {texts_of(me)}"


async def restarted_and_stepped(maker: Maker, me: Trader, worker: WorkerProcess) -> None:
    """Start a worker and wait until it stepped the bracket (a step reschedules a resting
    bracket past the restart by the recheck interval; the killed worker's steps could not)."""
    restarted = datetime.now(UTC)
    worker.start()

    async def stepped() -> bool:
        (bracket,) = await brackets_of(maker, me.user_id)
        return bracket.next_check_at > restarted + RESTING_RECHECK

    await until(stepped, within=60)


async def assert_protected_once(
    double: DydxDouble, maker: Maker, me: Trader, exchange: Exchange
) -> None:
    """Both legs rest, each placed once on the chain, the stop-loss covers the position, and
    the trader heard of the fill and of the protection once each."""
    await until(lambda: holds(exchange, SIZE, 2), within=60)
    await assert_invariant(exchange)
    assert chain_of(double, me) == (SIZE, 2)

    async def resting() -> bool:
        (bracket,) = await brackets_of(maker, me.user_id)
        return bracket.state is BracketState.RESTING

    await until(resting, within=30)
    await said(me, "Protected", within=30)
    # The fill's message was written before the kill; if the killed worker had claimed it
    # for sending, it is due again once that claim's lease lapses (CI caught that case).
    await said(me, f"Bought {SIZE} {MARKET}", within=CLAIM_LEASE.total_seconds() + 30)
    await asyncio.sleep(3)  # a few cron rounds: nothing more is placed or said
    assert placements(double) == {ENTRY: 1, STOP_LOSS: 1, TAKE_PROFIT: 1}
    (bracket,) = await brackets_of(maker, me.user_id)
    assert (bracket.state, bracket.generation, bracket.target_size) == (
        BracketState.RESTING,
        1,
        SIZE,
    )
    legs = [o for o in await orders_of(maker, me.user_id) if o.bracket_id is not None]
    assert sorted((leg.purpose, leg.generation, leg.state) for leg in legs) == [
        (OrderPurpose.STOP_LOSS, 1, OrderState.SUBMITTED),
        (OrderPurpose.TAKE_PROFIT, 1, OrderState.SUBMITTED),
    ]
    await assert_invariant(exchange)
    said_once(me, "Protected")
    said_once(me, "Bought")


async def resting_bracket(
    double: DydxDouble, maker: Maker, web: TestClient, me: Trader, exchange: Exchange
) -> None:
    """A long 0.1 entry with a take-profit 2 % above and a stop-loss 1 % below, resting."""
    await post_alert(web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, SIZE, 2), within=60)
    await said(me, "Protected", within=30)


# ------------------------------------------------------------------ the steps


@pytest.mark.parametrize(
    "processed", [False, True], ids=["entry-in-flight", "entry-filled-before-the-legs"]
)
async def test_a_worker_killed_around_the_entry_protects_it_once_on_return(
    processed: bool,
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker_process: WorkerProcess,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    # The node holds the entry: unprocessed (the worker dies before the chain saw it) or
    # filled (the worker dies after the entry and its bracket committed, before any leg).
    dydx_double.node.hang(HELD, RETRIES, process_first=processed, when=placing(ENTRY))
    worker_process.start()
    await post_alert(web, me, tp_pct="2", sl_pct="1")
    await kill_when_held(dydx_double, worker_process, placing(ENTRY), processed=processed)
    if not processed:
        # No blocks while the worker is down: the short-term entry's good_til_block stays
        # ahead however slowly this machine restarts a worker.
        dydx_double.pause_clock()
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.REQUESTED  # committed with the entry
    held = SIZE if processed else Decimal(0)
    assert chain_of(dydx_double, me) == (held, 0)
    assert await protection(exchange) == (held, Decimal(0), 0)  # unprotected for now

    worker_process.start()

    async def entry_answered() -> bool:
        (entry,) = [o for o in await orders_of(live_sessionmaker, me.user_id) if not o.bracket_id]
        return entry.state is not OrderState.SUBMITTING

    await until(entry_answered, within=90)
    dydx_double.resume_clock()
    await assert_protected_once(dydx_double, live_sessionmaker, me, exchange)


@pytest.mark.parametrize(
    "processed", [False, True], ids=["take-profit-unsent", "take-profit-unanswered"]
)
async def test_a_worker_killed_with_the_take_profit_in_flight_places_it_once_on_return(
    processed: bool,
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker_process: WorkerProcess,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    # The stop-loss goes first and rests; the take-profit's broadcast is held.
    dydx_double.node.hang(HELD, RETRIES, process_first=processed, when=placing(TAKE_PROFIT))
    worker_process.start()
    await post_alert(web, me, tp_pct="2", sl_pct="1")
    await kill_when_held(dydx_double, worker_process, placing(TAKE_PROFIT), processed=processed)
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.PLACING
    assert chain_of(dydx_double, me) == (SIZE, 2 if processed else 1)
    await until(lambda: holds(exchange, SIZE, 2 if processed else 1), within=30)
    await assert_invariant(exchange)  # the stop-loss covers the position meanwhile
    assert not any("Protected" in text for text in texts_of(me))  # not until both rest

    worker_process.start()
    await assert_protected_once(dydx_double, live_sessionmaker, me, exchange)


async def test_a_worker_killed_with_both_legs_resting_places_and_says_nothing_new(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker_process: WorkerProcess,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    worker_process.start()
    await resting_bracket(dydx_double, live_sessionmaker, web, me, exchange)
    worker_process.kill()

    await restarted_and_stepped(live_sessionmaker, me, worker_process)
    await assert_protected_once(dydx_double, live_sessionmaker, me, exchange)


@pytest.mark.parametrize("processed", [False, True], ids=["cancel-unsent", "cancel-unanswered"])
async def test_a_worker_killed_between_a_take_profit_fill_and_its_sibling_cancel(
    processed: bool,
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
    worker_process: WorkerProcess,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    worker_process.start()
    await resting_bracket(dydx_double, live_sessionmaker, web, me, exchange)
    stop = (await legs_of(live_sessionmaker, me))[OrderPurpose.STOP_LOSS]
    # The take-profit triggers and fills; the stop-loss's cancel is held.
    dydx_double.node.hang(HELD, RETRIES, process_first=processed, when=cancelling(stop.client_id))
    dydx_double.set_oracle_price(MARKET, PAST_TAKE_PROFIT)
    await kill_when_held(
        dydx_double, worker_process, cancelling(stop.client_id), processed=processed
    )
    (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.LEG_FILLED
    # Flat; unless the chain saw the cancel, the stop-loss outlives the position for now.
    assert chain_of(dydx_double, me) == (Decimal(0), 0 if processed else 1)
    # The take-profit's fill may be told already; what became of the protection is not.
    assert not any("Realized P&L" in text for text in texts_of(me))

    worker_process.start()
    await until(lambda: holds(exchange, Decimal(0), 0), within=60)
    await assert_invariant(exchange)
    assert chain_of(dydx_double, me) == (Decimal(0), 0)  # no leg outlived the position

    async def closed() -> bool:
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        return bracket.state is BracketState.CLOSED

    await until(closed, within=30)
    # Two messages: the take-profit's fill, and what became of the protection.
    await said(me, f"Sold {SIZE} {MARKET}", within=30)
    text = await said(me, "Realized P&L", within=30)
    assert "Take-profit hit" in text
    assert "Its stop-loss was cancelled (only this entry's)." in text
    await asyncio.sleep(3)  # a few cron rounds: nothing more is placed, cancelled or said
    assert accepted_cancels(dydx_double, stop.client_id) == 1
    assert placements(dydx_double) == {ENTRY: 1, STOP_LOSS: 1, TAKE_PROFIT: 1}
    legs = await legs_of(live_sessionmaker, me)
    assert legs[OrderPurpose.TAKE_PROFIT].state is OrderState.FILLED
    assert legs[OrderPurpose.STOP_LOSS].state is OrderState.CANCELED
    said_once(me, f"Sold {SIZE} {MARKET}")
    said_once(me, "Realized P&L")
    said_once(me, "Protected")
    assert not any("Not filled" in text for text in texts_of(me))
