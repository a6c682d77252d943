"""The whole trading path in one process: the real web app, a real arq worker, PostgreSQL,
Redis, and the Telegram and dYdX doubles. Used by the execution tests and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from arq.connections import RedisSettings
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from v4_proto.dydxprotocol.clob.order_pb2 import Order as ProtoOrder

from core.db.models import Alert, Order, User
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.exchange.factory import create_key_verifier
from core.runtime.config import Settings
from core.services.credentials import CredentialService
from core.services.webhooks import IssuedWebhook, WebhookService
from doubles.dydx.accounts import FundedTrader, make_funded_trader
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from webhook_server.app import create_app
from workers.settings import WorkerSettings
from workers.worker import TradingWorker, build_worker

Maker = async_sessionmaker[AsyncSession]


def timenow(offset: float = 0) -> str:
    """``{{timenow}}`` as TradingView renders it."""
    moment = datetime.now(UTC) + timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Trader:
    """A user with a Telegram chat, a stored API trading key and a webhook."""

    user_id: int
    chat: Any  # the Telegram double's simulated user
    hook: IssuedWebhook
    dydx: FundedTrader | None

    @property
    def token(self) -> str:
        """The webhook URL's token."""
        return self.hook.url.rsplit("/", 1)[1]


def worker_for(settings: Settings, **overrides: Any) -> TradingWorker:
    """The production worker (``TradingWorker`` with ``WorkerSettings``), in this process."""
    return build_worker(
        settings,
        RedisSettings.from_dsn(settings.redis_url.get_secret_value()),
        WorkerSettings,
        handle_signals=False,
        **overrides,
    )


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[TradingWorker]:
    """Run a worker for the duration of the block."""
    worker = worker_for(settings, **overrides)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Cancel jobs still running (a cron mid-run) and forget them, so close() only
        # releases resources instead of re-raising their cancellation.
        running = list(worker.tasks.values())
        for job_task in running:
            job_task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        worker.tasks.clear()
        await worker.close()


@contextlib.asynccontextmanager
async def running_web(settings: Settings) -> AsyncIterator[TestClient]:
    """Run the web app on a loopback port for the duration of the block."""
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def add_trader(
    maker: Maker,
    settings: Settings,
    telegram: TelegramDouble,
    dydx: DydxDouble,
    *,
    usdc: str = "10000",
    prefs: dict[str, Any] | None = None,
    with_key: bool = True,
) -> Trader:
    """Register a Telegram user, store their API trading key and issue their webhook."""
    chat = telegram.user(first_name="Trader", started=True)
    async with UnitOfWork(maker) as uow:
        user = await uow.users.get_or_create(chat.id)
        user.settings = Preferences.from_json(prefs or {}).to_json()
        await uow.commit()
        user_id = user.id
    funded = make_funded_trader(dydx, usdc) if with_key else None
    if funded is not None:
        credentials = CredentialService(
            maker,
            settings.keyring,
            create_key_verifier(settings.dydx),
        )
        try:
            await credentials.add_key(user_id, funded.owner_address, funded.api_private_key_hex)
        finally:
            await credentials.close()
    hook = await WebhookService(maker, settings.public_base_url).issue(user_id)
    return Trader(user_id=user_id, chat=chat, hook=hook, dydx=funded)


def alert(trader: Trader, **fields: Any) -> dict[str, Any]:
    """A native alert body for ``trader`` (ETH-USD market buy of 0.1 by default)."""
    body: dict[str, Any] = {
        "passphrase": trader.hook.passphrase,
        "market": "ETH-USD",
        "action": "buy",
        "size": "0.1",
        "time": timenow(),
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


async def post_alert(client: TestClient, trader: Trader, **fields: Any) -> dict[str, Any]:
    """POST an alert; assert it was accepted; the JSON answer."""
    response = await client.post(f"/hook/{trader.token}", json=alert(trader, **fields))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def wait_alert(maker: Maker, alert_id: int, *, within: float = 30) -> Alert:
    """Wait until an alert reaches a final state."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with maker() as session:
            row = await session.get(Alert, alert_id)
            assert row is not None
            if row.state.value not in ("ACCEPTED", "PROCESSING"):
                return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"alert {alert_id} still {row.state} after {within} s")
        await asyncio.sleep(0.05)


def placed_orders(dydx: DydxDouble) -> list[ProtoOrder]:
    """Every MsgPlaceOrder the node double accepted."""
    return [
        message.order
        for record in dydx.node.broadcasts
        if record.accepted
        for message in record.messages
        if type(message).__name__ == "MsgPlaceOrder"
    ]


async def orders_of(maker: Maker, user_id: int) -> list[Order]:
    """Every ledger order of a user, oldest first."""
    async with maker() as session:
        rows = await session.scalars(
            select(Order).where(Order.user_id == user_id).order_by(Order.id)
        )
        return list(rows.all())


async def user_row(maker: Maker, user_id: int) -> User:
    """A fresh copy of the user row."""
    async with maker() as session:
        row = await session.get(User, user_id)
        assert row is not None
        return row
