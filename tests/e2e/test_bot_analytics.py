"""/stats and /trades (pages and the CSV export) through the real aiogram bot and the
Telegram double, over the hand-checked ledger of ``tests/analytics_ledger``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiogram import Dispatcher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Fill, Order, User
from core.domain.preferences import Preferences
from core.runtime.config import Settings
from core.services.analytics.export import CSV_COLUMNS
from doubles.telegram import TelegramDouble
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


async def _seeded(telegram_double: TelegramDouble, maker: Maker, name: str) -> SimulatedUser:
    """An onboarded trader whose ledger holds the scenario, which began 10 days ago."""
    chat = await onboarded(telegram_double, name)
    async with maker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == chat.id))
    assert user is not None
    await ledger.seed(maker, user.id, datetime.now(UTC) - timedelta(days=10))
    return chat


async def _ask(chat: SimulatedUser, text: str) -> str:
    await chat.send(text)
    return (await chat.next_message(10)).text or ""


@pytest.mark.usefixtures("running_bot")
async def test_stats_to_the_cent_per_strategy_and_market(
    telegram_double: TelegramDouble, sessionmaker: Maker
) -> None:
    chat = await _seeded(telegram_double, sessionmaker, "Ines")
    shown = await _ask(chat, "/stats")
    expected = [
        "📈 Stats · last 30 days (💸 LIVE)",
        "Trades 5 · wins 3 · losses 2 · win rate 60.00%",
        "Net +$127.65 · fees $20.40 · funding −$1.95",
        "Profit factor 1.81 · expectancy +$25.53 per trade",
        "Average win +$94.82 · average loss −$78.41",
        "Max drawdown $104.85",
        "Best +$142.92 ETH-USD SHORT · worst −$104.85 BTC-USD SHORT",
        "⚡ Execution: median alert→broadcast 210 ms · median slippage 10 bps",
        "By strategy\ntrend: 3 trades, 100% won, +$284.48\n—: 1 trade, 0% won, −$51.98\n"
        "mean-rev: 1 trade, 0% won, −$104.85",
        "By market\nETH-USD: 3 trades, 100% won, +$284.48\nSOL-USD: 1 trade, 0% won, −$51.98\n"
        "BTC-USD: 1 trade, 0% won, −$104.85",
    ]
    for line in expected:
        assert line in shown, (line, shown)

    trend = await _ask(chat, "/stats 90d TREND")
    assert "📈 Stats · last 90 days (💸 LIVE) · strategy TREND" in trend
    assert "Trades 3 · wins 3 · losses 0 · win rate 100.00%" in trend
    assert "Net +$284.48 · fees $12.38 · funding −$3.15" in trend
    assert "Profit factor — ·" in trend
    # Latency and slippage of the trend alerts only: 120, 300, 1200 ms; +10, +16.13 bps.
    assert "median alert→broadcast 300 ms · median slippage 13.1 bps" in trend

    week = await _ask(chat, "/stats 7d")
    assert "No closed trades in this period." in week
    assert "/webhook" in week
    assert "is not a period" in await _ask(chat, "/stats 5d")


@pytest.mark.usefixtures("running_bot")
async def test_trades_pages_and_a_csv_that_parses_back_to_the_ledger(
    telegram_double: TelegramDouble, sessionmaker: Maker
) -> None:
    chat = await _seeded(telegram_double, sessionmaker, "Jon")
    await chat.send("/trades")
    first = await chat.next_message(10)
    text = first.text or ""
    assert "🧾 Trades (💸 LIVE) · page 1/2 · 6 in all" in text
    # Newest first: the open short the flip left, then the flipped long.
    assert text.index("ETH-USD short 2 · $3,050.00 → open") < text.index(
        "ETH-USD long 1 · $3,000.00 → $3,050.00"
    )
    assert "still open" in text
    assert "P&L +$47.00" in text
    assert re.search(r"alert #\d+ \(trend\)", text)
    assert "by hand" in text
    assert [b.text for b in first.buttons] == ["Older ▶", "📄 Export CSV"]

    await chat.press(first, text="Older ▶")
    edited = await chat.wait_edited(first)
    assert "page 2/2" in (edited.text or "")
    assert "ETH-USD long 1 · $3,000.00 → $3,100.00" in (edited.text or "")
    assert "P&L +$94.55" in (edited.text or "")
    assert [b.text for b in edited.buttons] == ["◀ Newer", "📄 Export CSV"]

    await chat.press(edited, text="📄 Export CSV")
    document = await chat.next_message(10)
    assert document.document_name is not None
    assert document.document_name.startswith("tv2dydx-trades-live-")
    assert document.document is not None
    assert document.document["mime_type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO((document.document_bytes or b"").decode())))
    assert tuple(rows[0]) == CSV_COLUMNS

    async with sessionmaker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == chat.id))
        assert user is not None
        stored = (
            await session.execute(
                select(Fill, Order.alert_id)
                .join(Order, Order.id == Fill.order_id)
                .where(Fill.user_id == user.id)
                .order_by(Fill.filled_at)
            )
        ).all()
    fills = [row for row in rows if row["kind"] == "fill"]
    assert len(fills) == len(stored) == 11
    for row, (fill, alert_id) in zip(fills, stored, strict=True):
        assert datetime.fromisoformat(row["time_utc"]) == fill.filled_at.replace(
            microsecond=fill.filled_at.microsecond // 1000 * 1000
        )
        assert row["time_utc"].endswith("+00:00")
        assert (row["market"], row["side"]) == (fill.market, fill.side.value)
        assert Decimal(row["size"]) == fill.size
        assert Decimal(row["price"]) == fill.price
        assert Decimal(row["fee"]) == fill.fee
        assert Decimal(row["realized_pnl"]) == fill.realized_pnl
        assert int(row["order_id"]) == fill.order_id
        assert (int(row["alert_id"]) if row["alert_id"] else None) == alert_id
    assert [row["strategy"] for row in fills][7:9] == ["", ""]  # the SOL trade, by hand
    funding = [row for row in rows if row["kind"] == "funding"]
    assert sum(Decimal(row["realized_pnl"]) for row in funding) == Decimal(
        "-2.15"
    )  # all six payments


@pytest.mark.usefixtures("running_bot")
async def test_without_trades_the_commands_say_what_to_do(
    telegram_double: TelegramDouble,
) -> None:
    chat = await onboarded(telegram_double, "Lea")
    await chat.send("/trades")
    empty = await chat.next_message(10)
    assert "No trades yet." in (empty.text or "")
    assert empty.buttons == []
    assert "No closed trades in this period." in await _ask(chat, "/stats all")


@pytest.mark.usefixtures("running_bot")
async def test_the_daily_digest_is_off_until_switched_on_in_settings(
    telegram_double: TelegramDouble, sessionmaker: Maker
) -> None:
    chat = await onboarded(telegram_double, "Mia")
    await chat.send("/settings")
    screen = await chat.next_message(10)
    assert "Daily digest: off" in (screen.text or "")
    await chat.press(screen, text="Daily digest")
    await chat.wait_edited(screen)
    assert "P&L with a small chart" in (screen.text or "")
    assert [b.text for b in screen.buttons][:3] == ["✅ Off", "07:00", "08:00"]
    await chat.press(screen, text="08:00")
    await chat.wait_edited(screen, count=2)
    assert "✅ Daily digest: daily at 08:00" in (screen.text or "")
    async with sessionmaker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == chat.id))
    assert user is not None
    assert Preferences.from_json(user.settings).digest_hour == 8
