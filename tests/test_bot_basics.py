"""The bot through the real aiogram, polling the Telegram double."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Dispatcher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_services, publish_commands
from core.config import Settings
from core.db.models import AuditLog, User
from core.telegram import create_bot
from tests.doubles.telegram import TelegramDouble


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[None]:
    settings = make_settings(**telegram_env)
    bot = create_bot(settings)
    await publish_commands(bot)
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=False,
            polling_timeout=1,
            **create_services(sessionmaker),
        )
    )
    yield
    await dispatcher.stop_polling()
    await asyncio.wait_for(polling, 10)
    await bot.session.close()


@pytest.mark.usefixtures("running_bot")
async def test_start_registers_and_greets_then_recognises_a_returning_user(
    telegram_double: TelegramDouble, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = telegram_double.user(first_name="Alice", username="alice")
    await user.send("/start")
    welcome = await user.next_message()
    assert "welcome to tv2dydx" in welcome.text
    assert "never withdraw" in welcome.text
    assert "/help" in welcome.text

    async with sessionmaker() as session:
        row = await session.scalar(select(User).where(User.telegram_id == user.id))
        assert row is not None
        assert row.username == "alice"
        audit = await session.scalar(select(AuditLog).where(AuditLog.user_id == row.id))
        assert audit is not None
        assert audit.action == "user_registered"

    await user.send("/start")
    again = await user.next_message()
    assert again.text.startswith("Welcome back, Alice.")


@pytest.mark.usefixtures("running_bot")
async def test_help_lists_every_published_command(telegram_double: TelegramDouble) -> None:
    published = telegram_double.calls_to("setMyCommands")
    assert published
    user = telegram_double.user(first_name="Bob")
    await user.send("/help")
    reply = await user.next_message()
    for command in ("/start", "/help"):
        assert command in reply.text
