"""Reads of the ledger for P&L analytics: fills with the order and alert behind them,
funding payments, and the timings of alert-driven orders. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Alert, Fill, FundingPayment, Notification, Order, Position, User
from core.domain.states import AlertState, OrderSide


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill as the analytics read it.

    Attributes:
        fill_id: The ledger's fill id.
        filled_at: When it filled (UTC).
        market: Market ticker.
        side: Buy or sell.
        size: Filled size (base units).
        price: Fill price.
        fee: Fee paid (negative for a rebate).
        realized_pnl: P&L the fill realized, its fee already deducted.
        order_id: Our order it belongs to, if any.
        alert_id: The alert that caused the order, if any.
        strategy: That alert's ``strategy`` label, if any.
    """

    fill_id: int
    filled_at: datetime
    market: str
    side: OrderSide
    size: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    order_id: int | None
    alert_id: int | None
    strategy: str | None


@dataclass(frozen=True, slots=True)
class FundingRecord:
    """A funding payment of one market (positive: received, negative: paid)."""

    paid_at: datetime
    market: str
    payment: Decimal
    rate: Decimal
    position_size: Decimal
    oracle_price: Decimal


@dataclass(frozen=True, slots=True)
class OrderTiming:
    """An alert-driven order's path: when the alert arrived, when the order was
    broadcast, the price the alert referred to and the average fill price."""

    market: str
    side: OrderSide
    strategy: str | None
    received_at: datetime
    submitted_at: datetime | None
    reference_price: Decimal | None
    average_price: Decimal | None


class AnalyticsRepository:
    """Access to fills, funding payments and order timings for the analytics."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def fills(
        self, user_id: int, *, paper: bool, until: datetime | None = None
    ) -> list[FillRecord]:
        """Every fill of the user's ledger (live or paper), oldest first."""
        query = (
            select(Fill, Order.alert_id, Alert.strategy)
            .outerjoin(Order, Order.id == Fill.order_id)
            .outerjoin(Alert, Alert.id == Order.alert_id)
            .where(Fill.user_id == user_id, Fill.paper.is_(paper))
            .order_by(Fill.filled_at, Fill.id)
        )
        if until is not None:
            query = query.where(Fill.filled_at < until)
        rows = (await self._session.execute(query)).all()
        return [
            FillRecord(
                fill_id=fill.id,
                filled_at=fill.filled_at,
                market=fill.market,
                side=fill.side,
                size=fill.size,
                price=fill.price,
                fee=fill.fee,
                realized_pnl=fill.realized_pnl,
                order_id=fill.order_id,
                alert_id=alert_id,
                strategy=strategy,
            )
            for fill, alert_id, strategy in rows
        ]

    async def funding(self, user_id: int, *, until: datetime | None = None) -> list[FundingRecord]:
        """The user's funding payments, oldest first (live accounts only: paper has none)."""
        query = (
            select(FundingPayment)
            .where(FundingPayment.user_id == user_id)
            .order_by(FundingPayment.paid_at, FundingPayment.id)
        )
        if until is not None:
            query = query.where(FundingPayment.paid_at < until)
        return [
            FundingRecord(
                paid_at=row.paid_at,
                market=row.market,
                payment=row.payment,
                rate=row.rate,
                position_size=row.position_size,
                oracle_price=row.oracle_price,
            )
            for row in await self._session.scalars(query)
        ]

    async def order_timings(
        self, user_id: int, *, paper: bool, since: datetime | None
    ) -> list[OrderTiming]:
        """Alert-driven orders (entries and closes, not protection legs) whose alert
        arrived since ``since``."""
        query = (
            select(
                Order.market,
                Order.side,
                Alert.strategy,
                Alert.received_at,
                Order.submitted_at,
                Order.reference_price,
                Order.average_price,
            )
            .join(Alert, Alert.id == Order.alert_id)
            .where(
                Order.user_id == user_id,
                Order.paper.is_(paper),
                Order.bracket_id.is_(None),
            )
            .order_by(Alert.received_at)
        )
        if since is not None:
            query = query.where(Alert.received_at >= since)
        return [OrderTiming(*row) for row in (await self._session.execute(query)).all()]

    async def last_funding_at(self, owner_address: str, subaccount_number: int) -> datetime | None:
        """When the newest stored funding payment of a subaccount was paid."""
        return await self._session.scalar(
            select(func.max(FundingPayment.paid_at)).where(
                FundingPayment.owner_address == owner_address,
                FundingPayment.subaccount_number == subaccount_number,
            )
        )

    async def add_funding(self, user_id: int, rows: Sequence[dict[str, object]]) -> int:
        """Store funding payments; one already stored (same subaccount, market and
        height) is ignored.

        Returns:
            How many were new.
        """
        if not rows:
            return 0
        result = await self._session.execute(
            insert(FundingPayment)
            .values([{**row, "user_id": user_id} for row in rows])
            .on_conflict_do_nothing(
                index_elements=[
                    FundingPayment.owner_address,
                    FundingPayment.subaccount_number,
                    FundingPayment.market,
                    FundingPayment.height,
                ]
            )
            .returning(FundingPayment.id)
        )
        return len(result.all())

    async def digest_users(self) -> list[User]:
        """Users who asked for the daily digest (``digest_hour`` set in their preferences)."""
        rows = await self._session.scalars(
            select(User)
            .where(User.settings.op("->>")("digest_hour").is_not(None))
            .order_by(User.id)
        )
        return list(rows)

    async def notification_exists(self, dedupe_key: str) -> bool:
        """Whether the outbox already holds a message with this key."""
        found = await self._session.scalar(
            select(Notification.id).where(Notification.dedupe_key == dedupe_key)
        )
        return found is not None

    async def alert_counts(self, user_id: int, since: datetime, until: datetime) -> tuple[int, int]:
        """``(accepted, rejected)`` alerts received in ``[since, until)``."""
        rejected = Alert.state == AlertState.REJECTED
        row = (
            await self._session.execute(
                select(
                    func.count().filter(~rejected),
                    func.count().filter(rejected),
                ).where(
                    Alert.user_id == user_id,
                    Alert.received_at >= since,
                    Alert.received_at < until,
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def open_positions(self, user_id: int, *, paper: bool) -> list[Position]:
        """The user's positions as last synced, open ones only, by market."""
        rows = await self._session.scalars(
            select(Position)
            .where(Position.user_id == user_id, Position.paper.is_(paper), Position.size != 0)
            .order_by(Position.market)
        )
        return list(rows)
