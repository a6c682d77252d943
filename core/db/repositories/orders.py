"""Orders, their fills, client-id counters and position snapshots: the trading ledger."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.models import AccountNonce, Fill, Order, Position
from core.domain.states import (
    OPEN_ORDER_STATES,
    IllegalTransitionError,
    OrderPurpose,
    OrderState,
    PositionSide,
    sources_of,
)

#: Order states the position monitor watches a subaccount for.
#: A subaccount stays watched this long after its last order: a trader who trades again
#: soon keeps the subscription instead of paying a new subscribe and REST catch-up each time.
WATCH_LINGER = timedelta(minutes=10)
WATCHED_ORDER_STATES = frozenset(
    {
        OrderState.SUBMITTING,
        OrderState.SUBMITTED,
        OrderState.UNKNOWN,
        OrderState.PARTIALLY_FILLED,
    }
)


class OrderRepository:
    """Access to ``orders`` (client ids are allocated by :mod:`core.db.repositories.execution`)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, order: Order) -> None:
        """Stage a new order."""
        self._session.add(order)

    async def get(self, order_id: int, *, lock: bool = False) -> Order | None:
        """An order by id, optionally locked for update."""
        statement = select(Order).where(Order.id == order_id)
        if lock:
            statement = statement.with_for_update()
        return await self._session.scalar(statement)

    async def for_alert(self, alert_id: int, *, legs: bool = True) -> Sequence[Order]:
        """Every order of an alert (without its legs if ``legs`` is False), oldest first."""
        statement = select(Order).where(Order.alert_id == alert_id)
        if not legs:
            statement = statement.where(Order.bracket_id.is_(None))
        rows = await self._session.scalars(statement.order_by(Order.id))
        return rows.all()

    async def get_for_alert(self, alert_id: int, purpose: OrderPurpose) -> Order | None:
        """The entry or close of an alert with this purpose (there is at most one; legs,
        one per bracket generation, are not counted)."""
        return await self._session.scalar(
            select(Order).where(
                Order.alert_id == alert_id, Order.purpose == purpose, Order.bracket_id.is_(None)
            )
        )

    async def unsettled(self, updated_before: datetime, limit: int = 100) -> Sequence[int]:
        """Ids of orders whose outcome is still open and untouched since ``updated_before``."""
        rows = await self._session.scalars(
            select(Order.id)
            .where(Order.state.in_(sorted(OPEN_ORDER_STATES)), Order.updated_at < updated_before)
            .order_by(Order.updated_at)
            .limit(limit)
        )
        return rows.all()

    async def closers_after(
        self, user_id: int, market: str, after_order_id: int, *, paper: bool
    ) -> Sequence[Order]:
        """The user's orders on ``market`` placed after ``after_order_id`` that filled
        something or may still fill (not legs), newest first: who closed or flipped a
        position, or may have and is not settled yet."""
        rows = await self._session.scalars(
            select(Order)
            .where(
                Order.user_id == user_id,
                Order.market == market,
                Order.paper.is_(paper),
                Order.id > after_order_id,
                Order.bracket_id.is_(None),
                or_(Order.filled_size > 0, Order.state.in_(sorted(OPEN_ORDER_STATES))),
            )
            .order_by(Order.id.desc())
        )
        return rows.all()

    async def live_legs(self, user_id: int, *, paper: bool) -> Sequence[Order]:
        """The user's take-profit / stop-loss legs that may still rest or fill."""
        rows = await self._session.scalars(
            select(Order).where(
                Order.user_id == user_id,
                Order.paper.is_(paper),
                Order.bracket_id.is_not(None),
                Order.state.in_(sorted(OPEN_ORDER_STATES)),
            )
        )
        return rows.all()

    async def watched_subaccounts(self) -> Sequence[tuple[str, int]]:
        """``(owner_address, subaccount_number)`` of every live-venue subaccount with an order
        that may still change, or one placed in the last :data:`WATCH_LINGER`: what the
        position monitor watches."""
        recent = utcnow() - WATCH_LINGER
        rows = await self._session.execute(
            select(Order.owner_address, Order.subaccount_number)
            .where(
                or_(Order.state.in_(sorted(WATCHED_ORDER_STATES)), Order.created_at >= recent),
                Order.paper.is_(False),
            )
            .distinct()
            .order_by(Order.owner_address, Order.subaccount_number)
        )
        return [(owner, number) for owner, number in rows.all()]

    async def open_in_subaccount(
        self, owner_address: str, subaccount_number: int
    ) -> Sequence[Order]:
        """Live-venue orders of a subaccount whose outcome is still open, oldest first."""
        rows = await self._session.scalars(
            select(Order)
            .where(
                Order.owner_address == owner_address,
                Order.subaccount_number == subaccount_number,
                Order.paper.is_(False),
                Order.state.in_(sorted(OPEN_ORDER_STATES)),
            )
            .order_by(Order.id)
        )
        return rows.all()

    async def transition(
        self,
        order: Order | int,
        to: OrderState,
        *,
        among: Collection[OrderState] | None = None,
        or_already: bool = False,
        **values: object,
    ) -> bool:
        """Move an order to ``to`` if :data:`~core.domain.states.ORDER_TRANSITIONS` allows it
        from the state the order is in: the one way an order's state changes after its insert.

        Given a row (which the caller holds locked), the row is changed in the session. Given
        an id, one optimistic ``UPDATE ... WHERE state IN (...)``: the job and the reconciler
        work on one order without a lock, and whoever comes second finds the state moved on
        and changes nothing.

        Args:
            order: A locked row, or an order's id.
            to: The state to move to.
            among: Move only from these of the allowed states.
            or_already: Also write ``values`` when the order is in ``to`` already.
            **values: Other columns written with the move.

        Returns:
            Whether the order moved.

        Raises:
            IllegalTransitionError: ``among`` names a move the state machine refuses.
        """
        allowed = sources_of(to)
        if among is not None:
            for state in among:
                if state not in allowed:
                    raise IllegalTransitionError(state, to)
            allowed = frozenset(among)
        if or_already:
            allowed |= {to}
        if isinstance(order, Order):
            if order.state not in allowed:
                return False
            order.state = to
            for name, value in values.items():
                setattr(order, name, value)
            return True
        result = await self._session.execute(
            update(Order)
            .where(Order.id == order, Order.state.in_(sorted(allowed)))
            .values(state=to, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def touch(self, order_id: int, at: datetime) -> bool:
        """Stamp ``updated_at`` of an order still open (no state change).

        Returns:
            Whether the order is still open.
        """
        result = await self._session.execute(
            update(Order)
            .where(Order.id == order_id, Order.state.in_(sorted(OPEN_ORDER_STATES)))
            .values(updated_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class FillRepository:
    """Access to ``fills``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, **values: object) -> bool:
        """Record a fill; one already recorded (same exchange fill id) is ignored.

        Returns:
            Whether the fill was new.
        """
        result = await self._session.execute(
            insert(Fill)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Fill.user_id, Fill.exchange_fill_id])
            .returning(Fill.id)
        )
        return result.scalar_one_or_none() is not None

    async def for_order(self, order_id: int) -> Sequence[Fill]:
        """Fills of one of our orders, oldest first."""
        rows = await self._session.scalars(
            select(Fill).where(Fill.order_id == order_id).order_by(Fill.filled_at, Fill.id)
        )
        return rows.all()

    async def realized_since(self, user_id: int, since: datetime, *, paper: bool) -> Decimal:
        """Realized PnL of the user's fills since ``since`` (negative for a loss)."""
        total = await self._session.scalar(
            select(func.coalesce(func.sum(Fill.realized_pnl), 0)).where(
                Fill.user_id == user_id, Fill.paper.is_(paper), Fill.filled_at >= since
            )
        )
        return Decimal(total or 0)


class PositionRepository:
    """Access to ``positions`` (snapshots of what the exchange reported)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(
        self,
        *,
        user_id: int,
        paper: bool,
        market: str,
        side: PositionSide | None,
        size: Decimal,
        entry_price: Decimal | None,
        at: datetime,
    ) -> None:
        """Upsert the user's position in ``market`` (size 0 and no side when flat)."""
        values = {
            "user_id": user_id,
            "paper": paper,
            "market": market,
            "side": side,
            "size": size,
            "entry_price": entry_price,
            "synced_at": at,
        }
        statement = insert(Position).values(
            **values, opened_at=at if size else None, closed_at=None if size else at
        )
        statement = statement.on_conflict_do_update(
            index_elements=[Position.user_id, Position.paper, Position.market],
            set_={
                "side": side,
                "size": size,
                "entry_price": entry_price,
                "synced_at": at,
                "closed_at": None if size else at,
                "opened_at": func.coalesce(Position.opened_at, at) if size else None,
            },
        )
        await self._session.execute(statement)


class NonceRepository:
    """Access to ``account_nonces`` (timestamp nonces of stateful orders)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def next_nonce(self, owner_address: str, now_ms: int) -> int:
        """``max(now_ms, last + 1)``, recorded atomically, so nonces only ever grow."""
        statement = (
            insert(AccountNonce)
            .values(owner_address=owner_address, last_nonce=now_ms)
            .on_conflict_do_update(
                index_elements=[AccountNonce.owner_address],
                set_={"last_nonce": func.greatest(AccountNonce.last_nonce + 1, now_ms)},
            )
            .returning(AccountNonce.last_nonce)
        )
        return int((await self._session.execute(statement)).scalar_one())
