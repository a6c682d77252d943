"""TELEGRAM_MODE=webhook: Telegram → web server (secret path + header) → Redis → bot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Dispatcher
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_services, publish_commands
from bot.updates import consume_updates, register_webhook
from core.adapters.telegram import create_bot
from core.adapters.telegram_webhook import UPDATES_QUEUE, webhook_path
from core.runtime.config import Settings
from doubles.telegram import TelegramDouble
from webhook_server.app import create_app

SECRET = "webhook-secret-0123456789abcdef"


@pytest.fixture
async def web(
    make_settings: Callable[..., Settings], telegram_env: dict[str, str], redis: Redis
) -> AsyncIterator[TestClient]:
    settings = make_settings(
        **telegram_env, telegram_mode="webhook", telegram_webhook_secret=SECRET
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def consumer(
    web: TestClient,
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
    redis: Redis,
) -> AsyncIterator[None]:
    settings = make_settings(
        **telegram_env,
        telegram_mode="webhook",
        telegram_webhook_secret=SECRET,
        public_base_url=str(web.make_url("")).rstrip("/"),
    )
    bot = create_bot(settings)
    await publish_commands(bot)
    await register_webhook(bot, dispatcher, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        consume_updates(bot, dispatcher, redis, stop, **create_services(sessionmaker, settings))
    )
    yield
    stop.set()
    await asyncio.wait_for(task, 10)
    await bot.session.close()


@pytest.mark.usefixtures("consumer")
async def test_updates_arrive_through_the_web_server(telegram_double: TelegramDouble) -> None:
    info = telegram_double.calls_to("setWebhook")[-1].params
    assert info["url"].endswith(webhook_path(SECRET))
    assert SECRET not in info["url"]
    user = telegram_double.user(first_name="Ivan")
    await user.send("/start")
    reply = await user.next_message(timeout=10)
    assert "welcome to tv2dydx" in (reply.text or "")
    deliveries = telegram_double.webhook_deliveries
    assert deliveries
    assert deliveries[-1].status == 200


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_queued(
    web: TestClient, redis: Redis
) -> None:
    path = webhook_path(SECRET)
    update = {"update_id": 1, "message": {"message_id": 1}}
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        response = await web.post(path, json=update, headers=headers)
        assert response.status == 401
    assert await redis.llen(UPDATES_QUEUE) == 0
    ok = await web.post(path, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert ok.status == 200
    assert await redis.llen(UPDATES_QUEUE) == 1
    bad = await web.post(path, data=b"[1]", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert bad.status == 400


async def test_a_redelivered_update_is_handled_once(
    telegram_double: TelegramDouble,
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
    redis: Redis,
) -> None:
    user = telegram_double.user(first_name="Judy", started=True)
    update = {
        "update_id": 4242,
        "message": {
            "message_id": 7,
            "date": 1_764_000_000,
            "chat": {"id": user.chat_id, "type": "private", "first_name": "Judy"},
            "from": {"id": user.id, "is_bot": False, "first_name": "Judy"},
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    raw = json.dumps(update)
    await redis.lpush(UPDATES_QUEUE, raw, raw)
    settings = make_settings(**telegram_env)
    bot = create_bot(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        consume_updates(bot, dispatcher, redis, stop, **create_services(sessionmaker, settings))
    )
    try:
        await user.next_message(timeout=10)
        await asyncio.sleep(0.5)
        assert await redis.llen(UPDATES_QUEUE) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await bot.session.close()
    assert len(user.bot_messages) == 1
