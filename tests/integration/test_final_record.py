"""An order's final record in two round trips, against real PostgreSQL: everything of it
written together, exactly once when two recorders race, and the daily-loss case left to the
unit of work."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Alert, Fill, Notification, Order, Position, User
from core.db.repositories.execution import ExecutionRepository
from core.db.repositories.settlement import SettlementRepository
from core.domain.states import (
    AlertState,
    OrderPurpose,
    OrderSide,
    OrderState,
    PositionSide,
)
from core.exchange.port import Fill as ExchangeFill
from core.exchange.port import Position as ExchangePosition
from core.services.execution.record import OrderRecorder
from core.services.execution.record_final import FinalRecorder, UnsuitedError

Maker = async_sessionmaker[AsyncSession]
OWNER = "dydx1owner000000000000000000000000000000"
AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
async def final(database_url: str) -> AsyncIterator[FinalRecorder]:
    store = ExecutionRepository(database_url)
    yield FinalRecorder(SettlementRepository(store))
    await store.close()


async def _entry(
    maker: Maker,
    *,
    side: OrderSide = OrderSide.BUY,
    position_before: str = "0",
    entry_before: str | None = None,
    settings: dict[str, object] | None = None,
) -> tuple[int, int, int]:
    """A trader, their alert and its submitted entry order of 0.1 ETH-USD."""
    async with maker() as session:
        user = User(telegram_id=secrets.randbelow(10**9), settings=settings or {})
        session.add(user)
        await session.flush()
        alert = Alert(
            user_id=user.id,
            body_hash=secrets.token_hex(32),
            market="ETH-USD",
            strategy="ema-cross",
            fields={},
            state=AlertState.PROCESSING,
        )
        session.add(alert)
        await session.flush()
        order = Order(
            user_id=user.id,
            alert_id=alert.id,
            purpose=OrderPurpose.ENTRY,
            market="ETH-USD",
            owner_address=OWNER,
            subaccount_number=0,
            client_id=secrets.randbelow(10**6),
            order_flags=0,
            side=side,
            order_type="MARKET",
            size=Decimal("0.1"),
            time_in_force="IOC",
            state=OrderState.SUBMITTED,
            reference_price=Decimal(3000),
            position_before=Decimal(position_before),
            entry_before=Decimal(entry_before) if entry_before else None,
        )
        session.add(order)
        await session.commit()
        return user.id, alert.id, order.id


def _fill(
    fill_id: str,
    size: str,
    price: str,
    side: OrderSide = OrderSide.BUY,
    *,
    at: datetime = AT,
) -> ExchangeFill:
    return ExchangeFill(
        fill_id=fill_id,
        order_id="indexer-order",
        market="ETH-USD",
        side=side,
        size=Decimal(size),
        price=Decimal(price),
        fee=Decimal("0.15"),
        liquidity="TAKER",
        created_at=at,
        created_at_height=100,
    )


LONG = [
    ExchangePosition(
        market="ETH-USD",
        side=PositionSide.LONG,
        size=Decimal("0.1"),
        entry_price=Decimal("3000.5"),
        unrealized_pnl=Decimal(0),
        realized_pnl=Decimal(0),
    )
]


async def test_a_final_record_writes_fills_totals_position_message_and_alert(
    live_sessionmaker: Maker, final: FinalRecorder
) -> None:
    user_id, alert_id, order_id = await _entry(live_sessionmaker)
    fills = [_fill("f1", "0.04", "3000"), _fill("f2", "0.06", "3001")]
    assert await final.record(order_id, fills, LONG) == (OrderState.FILLED, Decimal("0.1"))
    async with live_sessionmaker() as session:
        order = await session.get(Order, order_id)
        alert = await session.get(Alert, alert_id)
        recorded = (await session.scalars(select(Fill).order_by(Fill.exchange_fill_id))).all()
        position = await session.scalar(select(Position).where(Position.user_id == user_id))
        message = await session.scalar(select(Notification))
    assert order is not None
    assert order.state is OrderState.FILLED
    assert order.filled_size == Decimal("0.1")
    assert order.average_price == Decimal("3000.6")
    assert order.fee == Decimal("0.30")
    assert order.realized_pnl == Decimal("-0.30")  # an entry realizes only its fees
    assert order.filled_at == AT
    assert order.closed_at is not None
    assert [(f.exchange_fill_id, f.size, f.realized_pnl) for f in recorded] == [
        ("f1", Decimal("0.04"), Decimal("-0.15")),
        ("f2", Decimal("0.06"), Decimal("-0.15")),
    ]
    assert position is not None
    assert (position.side, position.size, position.entry_price) == (
        PositionSide.LONG,
        Decimal("0.1"),
        Decimal("3000.5"),
    )
    assert position.opened_at is not None
    assert alert is not None
    assert alert.state is AlertState.EXECUTED
    assert alert.finished_at is not None
    assert message is not None
    assert message.dedupe_key == f"order:{order_id}:final"
    assert "Bought <b>0.1</b> ETH-USD at <b>$3,000.60</b>" in message.text
    assert "ema-cross" in message.text


async def test_two_recorders_racing_record_the_outcome_and_the_message_once(
    live_sessionmaker: Maker, final: FinalRecorder
) -> None:
    _user_id, _alert_id, order_id = await _entry(live_sessionmaker)
    fills = [_fill("f1", "0.1", "3000")]
    outcomes = await asyncio.gather(*(final.record(order_id, fills, LONG) for _ in range(5)))
    assert [outcome for outcome in outcomes if outcome is not None] == [
        (OrderState.FILLED, Decimal("0.1"))
    ]
    async with live_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Fill)) == 1
        assert await session.scalar(select(func.count()).select_from(Notification)) == 1
    # A final order is never recorded again.
    assert await final.record(order_id, fills, LONG) is None


async def test_an_unfilled_order_is_canceled_and_its_alert_failed(
    live_sessionmaker: Maker, final: FinalRecorder
) -> None:
    _user_id, alert_id, order_id = await _entry(live_sessionmaker)
    assert await final.record(order_id, [], []) == (OrderState.CANCELED, Decimal(0))
    async with live_sessionmaker() as session:
        alert = await session.get(Alert, alert_id)
        message = await session.scalar(select(Notification))
        position = await session.scalar(select(Position))
    assert alert is not None
    assert alert.state is AlertState.FAILED
    assert message is not None
    assert "Not filled" in message.text
    assert position is not None
    assert (position.side, position.size, position.closed_at is not None) == (None, 0, True)


async def test_a_loss_under_a_daily_limit_is_left_to_the_unit_of_work_which_pauses(
    live_sessionmaker: Maker, final: FinalRecorder, database_url: str
) -> None:
    limit = {"daily_loss_limit_usd": "10"}
    user_id, _alert_id, order_id = await _entry(
        live_sessionmaker,
        side=OrderSide.SELL,
        position_before="0.1",
        entry_before="3000",
        settings=limit,
    )
    # Filled now: the limit counts the trader's losses since today's midnight.
    losing = [_fill("f1", "0.1", "2800", OrderSide.SELL, at=datetime.now(UTC))]  # -20 and fees
    with pytest.raises(UnsuitedError):
        await final.record(order_id, losing, [])
    store = ExecutionRepository(database_url)
    try:
        recorder = OrderRecorder(live_sessionmaker, FinalRecorder(SettlementRepository(store)))
        assert await recorder.record_fills(order_id, losing, final=True, positions=[]) == (
            OrderState.FILLED,
            Decimal("0.1"),
        )
    finally:
        await store.close()
    async with live_sessionmaker() as session:
        user = await session.get(User, user_id)
        kinds = set((await session.scalars(select(Notification.kind))).all())
    assert user is not None
    assert user.paused
    assert kinds == {"trade_filled", "trading_paused"}
