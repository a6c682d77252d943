"""The protection service: one idempotent step at a time towards the invariant, for
whoever calls (the execution job, a cron, the monitor, ``/close`` and ``/panic``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.repositories.brackets import GroupKey, position_lock_key
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import OPEN_ORDER_STATES, BracketState, PositionSide
from core.exchange.errors import ExchangeError
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.execution.place import OrderPlacer
from core.services.execution.record import OrderRecorder
from core.services.execution.settle import OrderSettler
from core.services.execution.trader import Trader
from core.services.protection.legs import LegDesk
from core.services.protection.manual import ManualProtection
from core.services.protection.renewal import LegLifetime
from core.services.protection.step import RESTING_RECHECK, GroupStep, View

#: How long an open entry is left to its job before a step settles it too.
ENTRY_LEFT_TO_JOB = timedelta(seconds=3)
#: A bracket whose entry has not filled yet is looked at again after this long.
WAITING_RECHECK = timedelta(seconds=2)
#: When the trader's venue cannot be built or asked, look again after this long.
RETRY_LATER = timedelta(seconds=30)
#: Steps at once in a process when the pool's size is unknown.
DEFAULT_STEP_SLOTS = 4

#: The positions whose lock this task holds (a settle inside a step may ask for a step).
_holding: ContextVar[tuple[GroupKey, ...]] = ContextVar("protection_holding", default=())


def _step_slots(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """How many positions a process steps at once: half its pool's steady size.

    A step holds its lock's connection and takes a second one for its work; unbounded
    (a burst of bracketed alerts, a block of fills) the lock connections alone took the
    whole pool and every step waited for a second connection until the pool timed out.
    """
    size = getattr(getattr(sessionmaker.kw.get("bind"), "pool", None), "size", None)
    return max(1, size() // 2) if callable(size) else DEFAULT_STEP_SLOTS


class ProtectionService(ManualProtection):
    """Moves brackets towards: while a position is open and its owner asked for a
    stop-loss, resting reduce-only stop-losses cover its whole size; no leg outlives its
    position; every change reaches the trader.

    A step works on all brackets of one position (user, paper, market) under a PostgreSQL
    advisory lock, so the job, the cron and the monitor never step the same position at
    once; the leg uniqueness ``(bracket, purpose, generation)`` is the backstop.

    Args:
        sessionmaker: Database sessions.
        exchanges: Builds each trader's venue.
        placer: Commits and broadcasts legs (the execution protocol).
        recorder: Records cancelled legs.
        settler: Refreshes legs (and entries nobody follows) from the venue.
        lifetime: How long legs rest on the chain, and when they are renewed.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchanges: ExchangeProvider,
        placer: OrderPlacer,
        recorder: OrderRecorder,
        settler: OrderSettler,
        lifetime: LegLifetime | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._exchanges = exchanges
        self._desk = LegDesk(sessionmaker, placer, recorder, lifetime)
        self._settler = settler
        self._slots = asyncio.Semaphore(_step_slots(sessionmaker))
        self._log = get_logger(__name__)

    async def advance(self, bracket_id: int) -> None:
        """One idempotent step for the position this bracket protects (and so for every
        bracket of that position: shrinking is LIFO across them).

        Returns at once when another step holds the position.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            bracket = await uow.brackets.get(bracket_id)
            if bracket is None or bracket.state.is_final:
                return
            key = (bracket.user_id, bracket.paper, bracket.market)
        await self._step(key)

    async def advance_for_subaccount(self, owner_address: str, subaccount_number: int) -> int:
        """A step for every position of a subaccount with an open bracket (the monitor calls
        this after recording fills; ``/close`` and ``/panic`` after closing).

        Returns:
            How many brackets were looked at.
        """
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            groups = await uow.brackets.groups_of_subaccount(owner_address, subaccount_number)
        return sum([await self._step(key) for key in groups])

    async def advance_due(self, limit: int = 100) -> int:
        """A step for positions whose brackets are due (a cron every second: finishes what a
        killed job left, and polls resting legs while nothing else reports fills).

        Returns:
            How many brackets were looked at.
        """
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            groups = await uow.brackets.due_groups(utcnow(), limit)
        return sum([await self._step(key) for key in groups])

    @property
    def desk(self) -> LegDesk:
        """Places and cancels legs (the trailing service moves stop-losses with it)."""
        return self._desk

    @contextlib.asynccontextmanager
    async def hold(self, key: GroupKey) -> AsyncIterator[bool]:
        """Hold the position's advisory lock for the block (False: someone else has it);
        a step and a trailing move of one position never run at once."""
        async with self._sessionmaker() as session, session.begin():
            held = await session.scalar(
                select(func.pg_try_advisory_xact_lock(position_lock_key(key)))
            )
            yield bool(held)

    async def _step(self, key: GroupKey) -> int:
        holding = _holding.get()
        if key in holding:
            return 0  # this task's own step holds it (and sees what a settle inside found)
        async with contextlib.AsyncExitStack() as stack:
            if not holding:  # a step within a step already has its slot
                await stack.enter_async_context(self._slots)
            async with self.hold(key) as held:
                if not held:
                    return 0
                token = _holding.set((*holding, key))
                try:
                    return await self._step_held(key)
                finally:
                    _holding.reset(token)

    async def _step_held(self, key: GroupKey) -> int:
        user_id, paper, market = key
        async with UnitOfWork(self._sessionmaker) as uow:
            brackets = list(await uow.brackets.open_in_group(user_id, paper, market))
            user = await uow.users.get(user_id)
            uow.detach(user, *brackets)
        if not brackets or user is None:
            return 0
        ids = [bracket.id for bracket in brackets]
        prefs = Preferences.from_json(user.settings)
        try:
            exchange = await self._exchanges.for_user(user_id, prefs.updated(paper=paper))
            await self._refresh(ids, exchange)
            positions = await exchange.positions()
        except (TradingNotReadyError, ExchangeError) as exc:
            self._log.warning("protection_step_deferred", user_id=user_id, error=str(exc))
            await self._schedule(ids, RETRY_LATER)
            return len(ids)
        current = next((p for p in positions if p.market == market), None)
        signed = Decimal(0)
        if current is not None:
            signed = current.size if current.side is PositionSide.LONG else -current.size
        step = GroupStep(
            self._sessionmaker, self._desk, exchange, Trader.of_user(user, prefs), signed
        )
        try:
            await step.run(await self._views(ids))
        except ExchangeError as exc:
            self._log.warning("protection_step_failed", user_id=user_id, error=str(exc))
        await self._schedule_open(ids)
        return len(ids)

    async def _refresh(self, ids: list[int], exchange: Exchange) -> None:
        """Settle every open leg, and an open entry its job left alone, from the venue."""
        now = utcnow()
        async with UnitOfWork(self._sessionmaker) as uow:
            legs = await uow.brackets.legs(ids)
            entries = await uow.brackets.entries(ids)
            open_entries = [
                order.id
                for order in entries
                if order.state in OPEN_ORDER_STATES and order.updated_at < now - ENTRY_LEFT_TO_JOB
            ]
            open_legs = [leg.id for leg in legs if leg.state in OPEN_ORDER_STATES]
        for order_id in [*open_entries, *open_legs]:
            await self._settler.settle(order_id, exchange=exchange)

    async def _views(self, ids: list[int]) -> list[View]:
        async with UnitOfWork(self._sessionmaker) as uow:
            views: list[View] = []
            legs = list(await uow.brackets.legs(ids))
            for bracket_id in ids:
                bracket = await uow.brackets.get(bracket_id)
                if bracket is None or bracket.state.is_final:
                    continue
                entry = await uow.orders.get(bracket.entry_order_id)
                if entry is None:
                    continue
                views.append(
                    View(bracket, entry, [leg for leg in legs if leg.bracket_id == bracket_id])
                )
            uow.detach(*[v.bracket for v in views], *[v.entry for v in views], *legs)
        return views

    async def _schedule(self, ids: list[int], after: timedelta) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            await uow.brackets.schedule(ids, utcnow() + after)
            await uow.commit()

    async def _schedule_open(self, ids: list[int]) -> None:
        """Brackets waiting on an entry that rests, or resting themselves, are polled at the
        resting pace; those mid-way (placing, a leg filled) at the cron's."""
        async with UnitOfWork(self._sessionmaker) as uow:
            await uow.brackets.schedule(
                ids,
                utcnow() + self._desk.lifetime.recheck(RESTING_RECHECK),
                states=(BracketState.RESTING,),
            )
            await uow.brackets.schedule(
                ids, utcnow() + WAITING_RECHECK, states=(BracketState.REQUESTED,)
            )
            await uow.commit()
