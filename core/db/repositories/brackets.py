"""Brackets: the protection each entry asked for, and its legs."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from core.db.models import Bracket, Order
from core.domain.states import (
    OPEN_BRACKET_STATES,
    BracketState,
    IllegalTransitionError,
    sources_of,
)

#: A group of brackets that share one position: (user, paper, market).
GroupKey = tuple[int, bool, str]


def position_lock_key(key: GroupKey) -> int:
    """A stable 64-bit PostgreSQL advisory-lock key for one position's brackets: every step,
    trail move and trader's change of one position takes it, so they never interleave."""
    user_id, paper, market = key
    digest = hashlib.blake2b(f"bracket:{user_id}:{paper}:{market}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class BracketRepository:
    """Access to ``brackets`` (inserted with their entry by
    :mod:`core.db.repositories.execution`)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, bracket: Bracket) -> None:
        """Stage a new bracket (protection added by hand; an entry's comes with its insert)."""
        self._session.add(bracket)

    async def get(self, bracket_id: int) -> Bracket | None:
        """A bracket by id."""
        return await self._session.get(Bracket, bracket_id)

    async def for_entry(self, entry_order_id: int) -> Bracket | None:
        """The bracket of an entry order, if it asked for protection."""
        return await self._session.scalar(
            select(Bracket).where(Bracket.entry_order_id == entry_order_id)
        )

    async def open_in_group(self, user_id: int, paper: bool, market: str) -> Sequence[Bracket]:
        """Brackets of one position that may still need work, oldest first."""
        rows = await self._session.scalars(
            select(Bracket)
            .where(
                Bracket.user_id == user_id,
                Bracket.paper.is_(paper),
                Bracket.market == market,
                Bracket.state.in_(sorted(OPEN_BRACKET_STATES)),
            )
            .order_by(Bracket.id)
        )
        return rows.all()

    async def due_groups(self, now: datetime, limit: int) -> list[GroupKey]:
        """Positions with a bracket that may still need work and is due for a look."""
        rows = await self._session.execute(
            select(Bracket.user_id, Bracket.paper, Bracket.market)
            .where(
                Bracket.state.in_(sorted(OPEN_BRACKET_STATES)),
                Bracket.next_check_at <= now,
            )
            .group_by(Bracket.user_id, Bracket.paper, Bracket.market)
            # The longest-waiting first, so a large backlog is worked through in turn.
            .order_by(func.min(Bracket.next_check_at))
            .limit(limit)
        )
        return [(row.user_id, row.paper, row.market) for row in rows]

    async def watched(self) -> Sequence[tuple[str, int]]:
        """``(owner_address, subaccount_number)`` of every live-venue subaccount with a
        bracket that may still need work: the position monitor watches them."""
        rows = await self._session.execute(
            select(Bracket.owner_address, Bracket.subaccount_number)
            .where(Bracket.state.in_(sorted(OPEN_BRACKET_STATES)), Bracket.paper.is_(False))
            .distinct()
        )
        return [(owner, number) for owner, number in rows.all()]

    async def resting_moving(self) -> Sequence[Bracket]:
        """Live-venue RESTING brackets with a trailing stop or breakeven (the trailing
        service tracks them)."""
        rows = await self._session.scalars(
            select(Bracket).where(
                Bracket.state == BracketState.RESTING,
                Bracket.paper.is_(False),
                or_(Bracket.trail_pct.is_not(None), Bracket.be_trigger_pct.is_not(None)),
            )
        )
        return rows.all()

    async def groups_of_subaccount(
        self, owner_address: str, subaccount_number: int
    ) -> list[GroupKey]:
        """Positions of one subaccount with a bracket that may still need work."""
        rows = await self._session.execute(
            select(Bracket.user_id, Bracket.paper, Bracket.market)
            .where(
                Bracket.owner_address == owner_address,
                Bracket.subaccount_number == subaccount_number,
                Bracket.state.in_(sorted(OPEN_BRACKET_STATES)),
            )
            .group_by(Bracket.user_id, Bracket.paper, Bracket.market)
        )
        return [(row.user_id, row.paper, row.market) for row in rows]

    async def entries(self, bracket_ids: Collection[int]) -> Sequence[Order]:
        """The entry orders of these brackets."""
        if not bracket_ids:
            return []
        rows = await self._session.scalars(
            select(Order)
            .join(Bracket, Bracket.entry_order_id == Order.id)
            .where(Bracket.id.in_(sorted(bracket_ids)))
        )
        return rows.all()

    async def legs(self, bracket_ids: Collection[int]) -> Sequence[Order]:
        """Every leg (all generations) of these brackets, oldest first."""
        if not bracket_ids:
            return []
        rows = await self._session.scalars(
            select(Order).where(Order.bracket_id.in_(sorted(bracket_ids))).order_by(Order.id)
        )
        return rows.all()

    async def schedule(
        self,
        bracket_ids: Collection[int],
        at: datetime,
        *,
        states: Collection[BracketState] | None = None,
    ) -> None:
        """When the cron looks at these brackets next (no state change)."""
        statement = update(Bracket).where(
            Bracket.id.in_(sorted(bracket_ids)),
            Bracket.state.in_(sorted(states if states is not None else OPEN_BRACKET_STATES)),
        )
        await self._session.execute(
            statement.values(next_check_at=at).execution_options(synchronize_session=False)
        )

    async def transition(
        self,
        bracket: Bracket,
        to: BracketState,
        **values: object,
    ) -> bool:
        """Move a bracket to ``to`` if :data:`~core.domain.states.BRACKET_TRANSITIONS` allows
        it: the one way a bracket's state changes after its insert.

        Optimistic: the update applies only if the row is still in the state and version it
        was read in (the job, the cron and the monitor may advance one bracket), and bumps the
        version. ``bracket`` is updated in place when the move happened.

        Args:
            bracket: The bracket as read.
            to: The state to move to (its own state: only ``values`` are written).
            **values: Other columns written with the move.

        Returns:
            Whether the bracket moved.

        Raises:
            IllegalTransitionError: The state machine refuses the move.
        """
        if to is not bracket.state and bracket.state not in sources_of(to):
            raise IllegalTransitionError(bracket.state, to)
        result = await self._session.execute(
            update(Bracket)
            .where(
                Bracket.id == bracket.id,
                Bracket.state == bracket.state,
                Bracket.version == bracket.version,
            )
            .values(state=to, version=bracket.version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        # The row is written: mirror it on the object without making it dirty again.
        for name, value in {"state": to, "version": bracket.version + 1, **values}.items():
            set_committed_value(bracket, name, value)
        return True
