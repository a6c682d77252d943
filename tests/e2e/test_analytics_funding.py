"""Funding payments: fetched from the Indexer (the dYdX double's ``/v4/fundingPayments``) when
the trader reads their analytics, stored once however often they are fetched, and included
in ``/pnl`` and the CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiogram import Dispatcher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import FundingPayment
from core.runtime.config import Settings
from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.state import ChainState
from doubles.telegram import TelegramDouble
from tests import analytics_ledger as ledger
from tests.conftest import polling_bot
from tests.e2e.test_bot_key import onboarded
from tests.e2e.test_bot_trading import _exchange, _open_position, _until, _with_key

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def running_bot(
    settings: Settings, live_sessionmaker: Maker, dispatcher: Dispatcher
) -> AsyncIterator[None]:
    async with polling_bot(settings, live_sessionmaker, dispatcher):
        yield


def _two_ticks(state: ChainState) -> None:
    state.pay_funding({"ETH-USD": Decimal("0.0001")})
    state.advance_block()
    state.pay_funding({"ETH-USD": Decimal("-0.00005")})


async def _stored(maker: Maker, owner: str) -> list[Decimal]:
    async with maker() as session:
        rows = await session.scalars(
            select(FundingPayment.payment)
            .where(FundingPayment.owner_address == owner)
            .order_by(FundingPayment.height)
        )
        return list(rows)


@pytest.mark.usefixtures("running_bot")
async def test_funding_is_fetched_once_and_counted_in_pnl_and_the_csv(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    dydx_double: DydxDouble,
) -> None:
    chat = await onboarded(telegram_double, "Uma")
    user_id = await _with_key(live_sessionmaker, settings, chat, funded_trader)
    await ledger.seed(live_sessionmaker, user_id, datetime.now(UTC) - timedelta(days=10))
    provider, exchange = await _exchange(live_sessionmaker, settings, user_id)
    try:
        await _open_position(exchange, "0.2", client_id=910_001)

        async def held() -> bool:
            return bool(await exchange.positions())

        await _until(held, "the position")
    finally:
        await provider.close()
    dydx_double.call(_two_ticks, dydx_double.state)
    owner = funded_trader.owner_address

    # 0.2 ETH long at 3000: pays 0.06 at +0.01 %, receives 0.03 at −0.005 %.
    await chat.send("/pnl all")
    photo = await chat.next_message(30)
    assert "funding −$2.18" in (photo.caption or "")  # the seeded −2.15, then −0.06 + 0.03
    assert await _stored(live_sessionmaker, owner) == [Decimal("-0.06"), Decimal("0.03")]

    await chat.send("/trades")
    page = await chat.next_message(10)
    await chat.press(page, text="📄 Export CSV")
    document = await chat.next_message(10)
    rows = list(csv.DictReader(io.StringIO((document.document_bytes or b"").decode())))
    funding = [row for row in rows if row["kind"] == "funding"]
    assert len(funding) == 6 + 2
    fetched = [row for row in funding if row["realized_pnl"] in ("-0.06", "0.03")]
    assert [(row["market"], row["side"], row["size"], row["price"]) for row in fetched] == [
        ("ETH-USD", "LONG", "0.2", "3000"),
        ("ETH-USD", "LONG", "0.2", "3000"),
    ]
    # Fetched again by /pnl, /trades and the export: still stored once.
    async with live_sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(FundingPayment)
            .where(FundingPayment.owner_address == owner)
        )
    assert count == 2
