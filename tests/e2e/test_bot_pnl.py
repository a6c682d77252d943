"""/pnl through the real aiogram bot and the Telegram double: a PNG photo of the expected
size with the period's figures, and period buttons that redraw it in the same message."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiogram import Dispatcher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import PaperAccount, User
from core.domain.preferences import Preferences
from core.runtime.config import Settings
from core.services.analytics.chart import HEIGHT_PX, WIDTH_PX
from doubles.telegram import PNG_SIGNATURE, ChatMessage, TelegramDouble
from doubles.telegram.actors import SimulatedUser
from tests import analytics_ledger as ledger
from tests.conftest import polling_bot
from tests.e2e.test_bot_key import onboarded

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    sessionmaker: Maker,
    dispatcher: Dispatcher,
) -> AsyncIterator[None]:
    async with polling_bot(make_settings(**telegram_env), sessionmaker, dispatcher):
        yield


def _png_size(data: bytes | None) -> tuple[int, int]:
    assert data is not None
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def _user(maker: Maker, chat: SimulatedUser) -> User:
    async with maker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == chat.id))
    assert user is not None
    return user


async def _photo(chat: SimulatedUser, command: str) -> ChatMessage:
    await chat.send(command)
    message = await chat.next_message(30)
    assert message.photo_files, message
    return message


@pytest.mark.usefixtures("running_bot")
async def test_pnl_sends_a_chart_and_its_buttons_redraw_it_in_place(
    telegram_double: TelegramDouble, sessionmaker: Maker
) -> None:
    chat = await onboarded(telegram_double, "Noa")
    user = await _user(sessionmaker, chat)
    await ledger.seed(sessionmaker, user.id, datetime.now(UTC) - timedelta(days=10))

    photo = await _photo(chat, "/pnl")
    assert _png_size(photo.photo_bytes) == (WIDTH_PX, HEIGHT_PX)
    assert photo.caption == (
        "📈 P&L · last 30 days (💸 LIVE)\n"
        "Realized +$150.00 · unrealized —\n"
        "Fees $23.40 · funding −$2.15\n"
        "Net +$124.45 · return —"
    )
    assert [b.text for b in photo.buttons] == ["7D", "• 30D •", "90D", "1Y", "All"]
    assert telegram_double.calls_to("sendPhoto")
    assert not telegram_double.calls_to("sendDocument")
    first_png = photo.photo_bytes

    await chat.press(photo, text="7D")
    edited = await chat.wait_edited(photo, timeout=30)
    assert edited.message_id == photo.message_id
    assert (edited.caption or "").startswith("📈 P&L · last 7 days (💸 LIVE)")
    assert "Net $0.00" in (edited.caption or "")  # the trades are ten days old
    assert _png_size(edited.photo_bytes) == (WIDTH_PX, HEIGHT_PX)
    assert edited.photo_bytes != first_png
    assert [b.text for b in edited.buttons] == ["• 7D •", "30D", "90D", "1Y", "All"]
    assert len(telegram_double.calls_to("editMessageMedia")) == 1

    await chat.press(edited, text="All")
    again = await chat.wait_edited(photo, count=2, timeout=30)
    assert "all time" in (again.caption or "")
    assert "Net +$124.45" in (again.caption or "")
    # No new message: the same one was edited.
    assert [m for m in chat.bot_messages if m.message_id > photo.message_id] == []


@pytest.mark.usefixtures("running_bot")
async def test_paper_pnl_is_labelled_paper_and_a_newcomer_gets_the_next_step(
    telegram_double: TelegramDouble, sessionmaker: Maker
) -> None:
    newcomer = await onboarded(telegram_double, "Oli")
    await newcomer.send("/pnl")
    empty = await newcomer.next_message(10)
    assert not empty.photo_files
    assert "No trades to chart yet (💸 LIVE)" in (empty.text or "")
    assert "/webhook" in (empty.text or "")
    await newcomer.send("/pnl 2w")
    assert "is not a period" in ((await newcomer.next_message(10)).text or "")

    chat = await onboarded(telegram_double, "Pam")
    user = await _user(sessionmaker, chat)
    async with sessionmaker() as session:
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(settings=Preferences(paper=True, timezone="Asia/Tokyo").to_json())
        )
        session.add(PaperAccount(user_id=user.id, balance=Decimal("10124.45")))
        await session.commit()
    await ledger.seed(sessionmaker, user.id, datetime.now(UTC) - timedelta(days=3), paper=True)

    photo = await _photo(chat, "/pnl 7d")
    assert _png_size(photo.photo_bytes) == (WIDTH_PX, HEIGHT_PX)
    caption = photo.caption or ""
    assert caption.startswith("📈 P&L · last 7 days (📝 PAPER)")
    # Paper: no funding; net 126.60 on a balance of 10,124.45 − 126.60 at the start.
    assert "Fees $23.40 · funding $0.00" in caption
    assert "Net +$126.60 · return +1.27%" in caption
