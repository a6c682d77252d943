"""Manual requests done by the worker (issue #13): a request is keyed by its PostgreSQL row,
so a job delivered twice, run twice at once, or re-run after its worker died mid-way never
closes twice, and the trader hears exactly once (real signing against the dYdX double)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from arq import ArqRedis
from sqlalchemy import func, select, update

from core.db.base import utcnow
from core.db.models import Notification
from core.db.models_manual import ManualRequest
from core.db.repositories.execution import ExecutionRepository
from core.domain.preferences import Preferences
from core.domain.states import OrderPurpose
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.execution.pipeline import ExecutionService
from core.services.manual import MAX_ATTEMPTS, ManualRequestService
from core.services.trading import TradingService
from core.texts import trading as texts
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.e2e.test_bot_trading import _open_position, _until
from tests.trading_stack import Maker, Trader, add_trader, orders_of
from workers.context import WorkerContext
from workers.jobs.run_manual_request import sweep_manual_requests


@pytest.fixture
async def manual(
    settings: Settings, live_sessionmaker: Maker, exchanges: ExchangeProvider
) -> AsyncIterator[ManualRequestService]:
    store = ExecutionRepository(settings.database_url.get_secret_value())
    execution = ExecutionService(live_sessionmaker, exchanges, store, max_lag=timedelta(seconds=60))
    trading = TradingService(live_sessionmaker, exchanges, execution)
    yield ManualRequestService(live_sessionmaker, trading=trading)
    await store.close()


async def _long(
    maker: Maker,
    settings: Settings,
    telegram: TelegramDouble,
    dydx: DydxDouble,
    exchanges: ExchangeProvider,
) -> Trader:
    """A trader with an open 0.2 ETH-USD long."""
    me = await add_trader(maker, settings, telegram, dydx)
    exchange = await exchanges.for_user(me.user_id, Preferences())
    await _open_position(exchange, "0.2", client_id=910_001)

    async def opened() -> bool:
        return bool(await exchange.positions())

    await _until(opened, "the position")
    return me


async def _closes(maker: Maker, user_id: int) -> int:
    return sum(o.purpose is OrderPurpose.MANUAL for o in await orders_of(maker, user_id))


async def _messages(maker: Maker, request_id: int) -> list[str]:
    async with maker() as session:
        rows = await session.scalars(
            select(Notification.text).where(Notification.dedupe_key == f"manual:{request_id}")
        )
        return list(rows)


async def test_a_request_delivered_twice_closes_once_and_says_so_once(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    manual: ManualRequestService,
) -> None:
    me = await _long(live_sessionmaker, settings, telegram_double, dydx_double, exchanges)
    request_id = await manual.ask_close(me.user_id, "ETH-USD")  # no queue: run by hand
    assert await manual.run(request_id)
    assert not await manual.run(request_id)  # the re-delivered job finds it done
    assert await _closes(live_sessionmaker, me.user_id) == 1
    (said,) = await _messages(live_sessionmaker, request_id)
    assert said.startswith("✅ Closed: ETH-USD: sold 0.2"), said
    async with live_sessionmaker() as session:
        request = await session.get(ManualRequest, request_id)
        assert request is not None
        assert (request.state, request.attempts) == ("DONE", 1)


async def test_two_runs_at_once_close_once(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    manual: ManualRequestService,
) -> None:
    me = await _long(live_sessionmaker, settings, telegram_double, dydx_double, exchanges)
    request_id = await manual.ask_close(me.user_id, "ETH-USD")
    done = await asyncio.gather(manual.run(request_id), manual.run(request_id))
    assert sorted(done) == [False, True]
    assert await _closes(live_sessionmaker, me.user_id) == 1
    assert len(await _messages(live_sessionmaker, request_id)) == 1


async def test_a_run_after_a_crash_reports_the_close_already_sent(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    manual: ManualRequestService,
) -> None:
    me = await _long(live_sessionmaker, settings, telegram_double, dydx_double, exchanges)
    request_id = await manual.ask_panic(me.user_id)
    # The first run claimed the request and sent the close, then its worker died before it
    # could mark the request done (what a kill -9 between the two leaves in the ledger).
    async with live_sessionmaker() as session, session.begin():
        await session.execute(
            update(ManualRequest)
            .where(ManualRequest.id == request_id)
            .values(state="RUNNING", attempts=1)
        )
    store = ExecutionRepository(settings.database_url.get_secret_value())
    try:
        execution = ExecutionService(
            live_sessionmaker, exchanges, store, max_lag=timedelta(seconds=60)
        )
        first = await TradingService(live_sessionmaker, exchanges, execution).close_market(
            me.user_id, "ETH-USD"
        )
    finally:
        await store.close()
    assert first.filled_size == Decimal("0.2")
    before = len(dydx_double.node.broadcasts)

    assert await manual.run(request_id)
    assert await _closes(live_sessionmaker, me.user_id) == 1
    assert len(dydx_double.node.broadcasts) == before  # nothing sent again
    (report,) = await _messages(live_sessionmaker, request_id)
    assert "Panic done" in report
    assert "ETH-USD: sold 0.2 @ $3,000.00, closed" in report, report
    async with live_sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(ManualRequest))
        request = await session.get(ManualRequest, request_id)
    assert count == 1
    assert request is not None
    assert (request.state, request.attempts) == ("DONE", 2)


async def test_lost_and_given_up_jobs_are_queued_again_then_the_request_is_given_up(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    manual: ManualRequestService,
    redis: Any,
) -> None:
    me = await _long(live_sessionmaker, settings, telegram_double, dydx_double, exchanges)
    request_id = await manual.ask_close(me.user_id, "ETH-USD")  # its enqueue "lost"
    arq = ArqRedis.from_url(settings.redis_url.get_secret_value())
    try:
        context = cast(WorkerContext, {"manual": manual, "redis": arq})
        assert await sweep_manual_requests(context) == 0  # too recent: maybe still queuing
        async with live_sessionmaker() as session, session.begin():
            await session.execute(
                update(ManualRequest).values(created_at=utcnow() - timedelta(minutes=1))
            )
        assert await sweep_manual_requests(context) == 1
        assert await redis.exists(f"arq:job:manual:{request_id}")
        assert await sweep_manual_requests(context) == 0  # queued already: the same job id

        # A run that started long ago and never finished: queued again under a new job id.
        async with live_sessionmaker() as session, session.begin():
            await session.execute(
                update(ManualRequest).values(
                    state="RUNNING", attempts=1, started_at=utcnow() - timedelta(minutes=10)
                )
            )
        assert await sweep_manual_requests(context) == 1
        assert await redis.exists(f"arq:job:manual:{request_id}:1")
    finally:
        await arq.aclose()

    # After MAX_ATTEMPTS runs it is given up: nothing is sent, the trader is told to check.
    async with live_sessionmaker() as session, session.begin():
        await session.execute(update(ManualRequest).values(attempts=MAX_ATTEMPTS))
    before = len(dydx_double.node.broadcasts)
    assert await manual.run(request_id)
    assert len(dydx_double.node.broadcasts) == before
    assert await _closes(live_sessionmaker, me.user_id) == 0
    assert await _messages(live_sessionmaker, request_id) == [texts.manual_gave_up()]
