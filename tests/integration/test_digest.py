"""The daily digest with a frozen clock: two traders in two timezones get it at their own
08:00, once per local day (however often the cron runs, and across a restart)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Alert, Notification, Position, User
from core.domain.preferences import Preferences
from core.domain.states import AlertState, PositionSide
from core.services.analytics.chart import HEIGHT_PX, WIDTH_PX
from core.services.analytics.digest import DIGEST_KIND, DigestService
from core.services.analytics.rendering import ChartRenderer
from doubles.telegram import PNG_SIGNATURE
from tests import analytics_ledger as ledger

Maker = async_sessionmaker[AsyncSession]
BERLIN_MIDNIGHT_DEC_7 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


@pytest.fixture
async def renderer() -> AsyncIterator[ChartRenderer]:
    charts = ChartRenderer(cache_size=0)
    yield charts
    charts.close()


async def _user(maker: Maker, telegram_id: int, prefs: Preferences) -> int:
    async with maker() as session:
        user = User(telegram_id=telegram_id, settings=prefs.to_json())
        session.add(user)
        await session.commit()
        return user.id


async def _digests(maker: Maker) -> list[Notification]:
    async with maker() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.kind == DIGEST_KIND).order_by(Notification.id)
        )
        return list(rows)


async def test_digest_at_each_traders_local_hour_once_a_day(
    sessionmaker: Maker, renderer: ChartRenderer
) -> None:
    berlin = await _user(sessionmaker, 7001, Preferences(timezone="Europe/Berlin", digest_hour=8))
    new_york = await _user(
        sessionmaker, 7002, Preferences(timezone="America/New_York", digest_hour=8)
    )
    await _user(sessionmaker, 7003, Preferences(timezone="Europe/Berlin"))  # digest off
    await ledger.seed(sessionmaker, berlin, BERLIN_MIDNIGHT_DEC_7)
    async with sessionmaker() as session:
        session.add(
            Alert(
                user_id=berlin,
                body_hash="0" * 64,
                state=AlertState.REJECTED,
                reason="market not allowed",
                received_at=BERLIN_MIDNIGHT_DEC_7 + timedelta(hours=12),
            )
        )
        session.add(
            Position(
                user_id=berlin,
                market="ETH-USD",
                side=PositionSide.LONG,
                size=Decimal("0.5"),
                entry_price=Decimal(3000),
            )
        )
        await session.commit()

    now = datetime(2026, 12, 8, 6, 55, tzinfo=UTC)  # 07:55 in Berlin, 01:55 in New York

    def clock() -> datetime:
        return now

    digest = DigestService(sessionmaker, renderer, clock)
    assert await digest.run() == 0

    now = datetime(2026, 12, 8, 7, 5, tzinfo=UTC)  # 08:05 in Berlin
    assert await digest.run() == 1
    [first] = await _digests(sessionmaker)
    assert (first.user_id, first.chat_id) == (berlin, 7001)
    assert first.dedupe_key == f"digest:{berlin}:2026-12-08"
    assert "🗓 <b>Daily digest</b> · Mon 07 Dec 2026 (💸 LIVE)" in first.text
    # Trades A and B closed on the 7th (Berlin): −1.50 + 98.45 − 3.00 − 103.05, funding −1.20.
    assert "Net <b>−$10.30</b> from 4 fills" in first.text
    assert "Realized $0.00 · fees $9.10 · funding −$1.20" in first.text
    assert "• ETH-USD LONG 0.5 @ $3,000.00 · ⚠️ no stop-loss" in first.text
    assert "Alerts: 4 accepted, 1 rejected." in first.text
    assert first.attachment is not None
    assert first.attachment.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", first.attachment[16:24]) == (WIDTH_PX, HEIGHT_PX)

    # The cron runs again, and a restarted worker (a new service) too: nothing twice.
    now = datetime(2026, 12, 8, 7, 10, tzinfo=UTC)
    assert await digest.run() == 0
    now = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    assert await DigestService(sessionmaker, renderer, clock).run() == 0

    now = datetime(2026, 12, 8, 13, 5, tzinfo=UTC)  # 08:05 in New York
    assert await digest.run() == 1
    second = (await _digests(sessionmaker))[-1]
    assert (second.user_id, second.dedupe_key) == (new_york, f"digest:{new_york}:2026-12-08")
    assert "Mon 07 Dec 2026" in second.text
    assert "No fills · funding $0.00" in second.text
    assert "No open positions." in second.text
    assert second.attachment is None

    # Past the catch-up window nothing is sent late; the next morning it comes again.
    now = datetime(2026, 12, 9, 11, 0, tzinfo=UTC)  # 12:00 in Berlin, 06:00 in New York
    assert await digest.run() == 0
    now = datetime(2026, 12, 9, 7, 0, tzinfo=UTC)
    assert await digest.run() == 1
    keys = [row.dedupe_key for row in await _digests(sessionmaker)]
    assert keys == [
        f"digest:{berlin}:2026-12-08",
        f"digest:{new_york}:2026-12-08",
        f"digest:{berlin}:2026-12-09",
    ]
