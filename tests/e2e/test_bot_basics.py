"""/start, the declaration gate and /help through the real aiogram and the Telegram double."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Dispatcher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import publish_commands
from core.db.models import AuditLog, User
from core.domain.compliance import DECLARATION
from core.runtime.config import Settings
from doubles.telegram import TelegramDouble
from tests.conftest import polling_bot


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[None]:
    settings = make_settings(**telegram_env)
    async with polling_bot(settings, sessionmaker, dispatcher) as (bot, _services):
        await publish_commands(bot)
        yield


async def _user_row(sessionmaker: async_sessionmaker[AsyncSession], telegram_id: int) -> User:
    async with sessionmaker() as session:
        row = await session.scalar(select(User).where(User.telegram_id == telegram_id))
        assert row is not None
        return row


@pytest.mark.usefixtures("running_bot")
async def test_start_greets_and_asks_for_the_declaration_until_accepted(
    telegram_double: TelegramDouble, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = telegram_double.user(first_name="Alice", username="alice")
    await user.send("/start")
    welcome = await user.next_message()
    assert "welcome to tv2dydx" in (welcome.text or "")
    assert "never withdraw" in (welcome.text or "")
    declaration = await user.next_message()
    assert "United States or Canada" in (declaration.text or "")
    assert DECLARATION.version in (declaration.text or "")
    assert [b.text for b in declaration.buttons] == ["I confirm"]

    # Nothing else works before acceptance, and the answer says what to do.
    await user.send("/help_me_trade")
    gate = await user.next_message()
    assert gate.text == "Please accept the declaration first: send /start."

    answer = await user.press(declaration, text="I confirm")
    assert answer is not None
    await user.wait_edited(declaration)
    assert declaration.buttons == []
    thanks = await user.next_message()
    assert "Next step" in (thanks.text or "")

    row = await _user_row(sessionmaker, user.id)
    assert row.username == "alice"
    assert row.declaration_version == DECLARATION.version
    assert row.declaration_accepted_at is not None
    async with sessionmaker() as session:
        actions = set(
            await session.scalars(select(AuditLog.action).where(AuditLog.user_id == row.id))
        )
    assert actions == {"user_registered", "declaration_accepted"}

    await user.send("/start")
    again = await user.next_message()
    assert (again.text or "").startswith("Welcome back, Alice.")
    checklist = await user.next_message()
    assert "✅ Declaration accepted" in (checklist.text or "")
    assert "⬜️ Wallet linked" in (checklist.text or "")
    assert (checklist.text or "").endswith("Next step: /link your wallet.")


@pytest.mark.usefixtures("running_bot")
async def test_a_new_declaration_version_asks_again(
    telegram_double: TelegramDouble, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = telegram_double.user(first_name="Bob")
    await user.send("/start")
    await user.next_message()
    await user.next_message()
    async with sessionmaker() as session:
        row = await session.scalar(select(User).where(User.telegram_id == user.id))
        assert row is not None
        row.declaration_version = "2020-01-01"
        await session.commit()
    await user.send("/start")
    await user.next_message()
    renewed = await user.next_message()
    assert "has changed" in (renewed.text or "")


@pytest.mark.usefixtures("running_bot")
async def test_help_lists_every_published_command(telegram_double: TelegramDouble) -> None:
    published = telegram_double.calls_to("setMyCommands")
    assert published
    user = telegram_double.user(first_name="Carol")
    await user.send("/help")
    reply = await user.next_message()
    for command in ("/start", "/help"):
        assert command in (reply.text or "")
