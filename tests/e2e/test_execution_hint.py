"""The subaccount an alert's job is told at intake: read while the alert loads, and used
only when the trader's key trades it (the real web app, arq worker, PostgreSQL, Redis and
the dYdX double)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient
from arq import ArqRedis
from arq.jobs import deserialize_result
from redis.asyncio import Redis

from core.adapters.arq_queue import ArqJobQueue
from core.alerts.schema import parse_alert
from core.db.models import Alert
from core.db.repositories.intake import IntakeRepository
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.config import Settings
from core.security.crypto import token_hash
from core.services.jobs import EXECUTE_ALERT, alert_job_id
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.trading_stack import Maker, add_trader, placed_orders, post_alert, wait_alert


async def test_intake_names_the_live_subaccount_and_the_job_sizes_from_its_read(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
    redis: Redis,
) -> None:
    dydx_double.set_oracle_price("ETH-USD", "2500")
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double, usdc="4000")
    assert me.dydx is not None
    answer = await post_alert(web, me, size=None, size_pct="25")
    row = await wait_alert(live_sessionmaker, answer["id"])
    assert row.state is AlertState.EXECUTED, row.reason

    # The job carried the subaccount (public: an address and a number, never the key).
    raw = await redis.get(f"arq:result:{alert_job_id(answer['id'])}")
    assert raw is not None
    result = deserialize_result(raw)
    assert result.args == (answer["id"], me.dydx.owner_address, 0)
    (order,) = placed_orders(dydx_double)
    assert order.order_id.subaccount_id.owner == me.dydx.owner_address
    assert order.quantums == 400_000_000  # 25 % of $4,000 at $2,500 = 0.4 ETH


async def test_a_job_told_another_subaccount_plans_from_its_own_keys(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
    worker: None,
) -> None:
    # The key was replaced between intake and the job: the hint names a subaccount the
    # key does not trade (here another trader's, ten times richer). Its read is ignored.
    dydx_double.set_oracle_price("ETH-USD", "2500")
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double, usdc="4000")
    rich = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double, usdc="40000")
    assert me.dydx is not None
    assert rich.dydx is not None
    request = parse_alert(
        {"market": "ETH-USD", "action": "buy", "size_pct": "25", "alert_id": "hinted"}
    )
    async with UnitOfWork(live_sessionmaker) as uow:
        alert = Alert(
            user_id=me.user_id,
            body_hash="0" * 64,
            state=AlertState.ACCEPTED,
            received_at=datetime.now(UTC),
            market="ETH-USD",
            action="buy",
            fields=request.to_fields(),
        )
        uow.session.add(alert)
        await uow.session.flush()
        await uow.commit()
        alert_id = alert.id
    queue = ArqJobQueue(ArqRedis.from_url(settings.redis_url.get_secret_value()))
    try:
        job = (alert_job_id(alert_id), alert_id, rich.dydx.owner_address, 0)
        assert await queue.enqueue_many(EXECUTE_ALERT, [job]) == [True]
    finally:
        await queue.close()

    row = await wait_alert(live_sessionmaker, alert_id)
    assert row.state is AlertState.EXECUTED, row.reason
    (order,) = placed_orders(dydx_double)
    assert order.order_id.subaccount_id.owner == me.dydx.owner_address
    assert order.quantums == 400_000_000  # my $4,000, not the $40,000 the hint's read saw


async def test_intake_names_no_subaccount_without_a_key_or_while_paper_trading(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
) -> None:
    live = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    paper = await add_trader(
        live_sessionmaker, settings, telegram_double, dydx_double, prefs={"paper": True}
    )
    keyless = await add_trader(
        live_sessionmaker, settings, telegram_double, dydx_double, with_key=False
    )
    assert live.dydx is not None
    store = await IntakeRepository.connect(settings.database_url.get_secret_value())
    try:
        found = {
            name: await store.find_webhook(token_hash(trader.token))
            for name, trader in (("live", live), ("paper", paper), ("keyless", keyless))
        }
    finally:
        await store.close()
    assert {name: owner.subaccount if owner else "missing" for name, owner in found.items()} == {
        "live": (live.dydx.owner_address, 0),
        "paper": None,
        "keyless": None,
    }
