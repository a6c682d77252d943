"""``LedgerRecorder``: the monitor's listener that writes what changed to PostgreSQL.

It reuses the execution path rather than writing events itself: each of our orders an event
names (or, on a catch-up, each of the subaccount's orders still open) is settled by
:meth:`core.services.execution.settle.OrderSettler.settle`, which asks the exchange and
records through :class:`~core.services.execution.record.OrderRecorder`: fills unique per
exchange fill id, order states only forward through the repository's transition function,
the trader's message in the transaction that makes the order final. Whoever sees a fill
first (the job, the reconcile cron or the monitor) records it; the others find nothing left.
Position events are written as position snapshots. Then the optional ``after_sync`` hook
runs (the protection service advances the subaccount's brackets there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Order
from core.db.uow import UnitOfWork
from core.domain.states import OrderState
from core.exchange.errors import ExchangeError
from core.exchange.stream import (
    FillEvent,
    OrderEvent,
    PositionEvent,
    SubaccountEvent,
    SubaccountRef,
)
from core.runtime.logs import get_logger
from core.services.execution.settle import DEFAULT_SETTLE_TIMEOUT
from core.services.priority import PlacementGate

#: Settles one of our orders by id (``OrderSettler.settle``).
Settle = Callable[[int], Awaitable[object]]
#: Runs after a subaccount was synced.
AfterSync = Callable[[SubaccountRef], Awaitable[None]]
#: Whether a job in this process follows an order (owner, subaccount, client id) to its end.
Followed = Callable[[str, int, int], bool]
#: Tells the job following an order (owner, subaccount, client id) to look at it now, with
#: the stream's batch that named it.
Wake = Callable[[str, int, int, Sequence[SubaccountEvent]], None]

#: A SUBMITTING order younger than this is its job's: it may not be broadcast yet.
FRESH_ORDER_AGE = timedelta(seconds=5)
#: An entry or close younger than this is followed by its own job (which waits up to
#: :data:`~core.services.execution.settle.DEFAULT_SETTLE_TIMEOUT` from its broadcast, a few
#: milliseconds after the order's commit): the monitor leaves it alone, so a burst of new
#: orders is not settled twice on the worker's event loop. The margin is short on purpose: a
#: limit entry filling just after its job stopped waiting must reach its protection at once
#: (settling twice, when a job started late, is only wasted work). Legs (bracket orders)
#: have no job and are always settled here; a job that died is covered by the reconcile cron
#: within seconds. A partly filled order is never left to its job: it is a resting limit
#: order (a market order's partial fill is final at once), whose job may have stopped
#: waiting, and a fill of it must reach its protection at once.
JOB_FOLLOWS = timedelta(seconds=DEFAULT_SETTLE_TIMEOUT + 1)


def touched_orders(orders: Sequence[Order], events: Sequence[SubaccountEvent]) -> list[Order]:
    """The orders the events are about: named by client id, or, for a fill whose order the
    venue did not name, every order of that market (liquidations fill none of ours)."""
    client_ids: set[int] = set()
    markets: set[str] = set()
    for event in events:
        if isinstance(event, OrderEvent):
            client_ids.add(event.client_id)
        elif isinstance(event, FillEvent):
            if event.order_client_id is not None:
                client_ids.add(event.order_client_id)
            elif not event.liquidation:
                markets.add(event.market)
    return [o for o in orders if o.client_id in client_ids or o.market in markets]


class LedgerRecorder:
    """Records a subaccount's fills, order states and positions.

    A catch-up leaves out SUBMITTING orders younger than ``fresh_age``: their job is about to
    broadcast them, and settling would re-broadcast the same bytes alongside it (harmless, but
    traffic on the hot path). The reconcile cron and the next catch-up take them if the job
    died.

    Args:
        sessionmaker: Database sessions.
        settle: Settles one of our orders (idempotent).
        after_sync: Called after every sync of a subaccount.
        fresh_age: Age under which a SUBMITTING order is left to its job on a catch-up.
        job_follows: Age under which an entry or close is left to the job following it.
        followed: Whether a job of this process is following an order to its end; events
            only about such orders are left to it (it records the fills, the position and
            its protection step): no ledger reads or writes of the monitor's own. Without
            it, every event is synced.
        wake: Tells a job following an order that the stream has news of it.
        gate: This process's placing-first gate: a sync (after waking the jobs its events
            concern) waits while alerts are being placed, like every bookkeeping step.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settle: Settle,
        *,
        after_sync: AfterSync | None = None,
        fresh_age: timedelta = FRESH_ORDER_AGE,
        job_follows: timedelta = JOB_FOLLOWS,
        followed: Followed | None = None,
        wake: Wake | None = None,
        gate: PlacementGate | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._gate = gate
        self._followed = followed
        self._wake = wake
        self._settle = settle
        self._after_sync = after_sync
        self._fresh_age = fresh_age
        self._job_follows = job_follows
        self._log = get_logger(__name__)

    async def subaccount_changed(
        self, ref: SubaccountRef, events: Sequence[SubaccountEvent], *, catch_up: bool
    ) -> None:
        """Settle the orders the events touch (all open ones on a catch-up), record the
        positions, then run ``after_sync``."""
        # What this sync does (a settle's protection step among it) logs as the monitor's.
        with structlog.contextvars.bound_contextvars(via="monitor"):
            await self._sync(ref, events, catch_up=catch_up)

    async def _sync(
        self, ref: SubaccountRef, events: Sequence[SubaccountEvent], *, catch_up: bool
    ) -> None:
        if self._wake is not None:
            named: set[int] = set()
            for event in events:
                if isinstance(event, OrderEvent):
                    named.add(event.client_id)
                elif isinstance(event, FillEvent) and event.order_client_id is not None:
                    named.add(event.order_client_id)
            for client_id in sorted(named):
                self._wake(ref.owner_address, ref.subaccount_number, client_id, events)
        # Placing first: the jobs are woken at once, the monitor's own writes wait.
        if self._gate is not None:
            await self._gate.yield_to_placing()
        if not catch_up and self._left_to_jobs(ref, events):
            # Only a position that changed concerns the subaccount's other brackets.
            moved = any(isinstance(e, FillEvent | PositionEvent) for e in events)
            if moved and self._after_sync is not None:
                await self._after_sync(ref)
            return
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            orders = list(
                await uow.orders.open_in_subaccount(ref.owner_address, ref.subaccount_number)
            )
            credential = await uow.credentials.get_by_owner(
                ref.owner_address, ref.subaccount_number
            )
            user_id = credential.user_id if credential is not None else None
            uow.detach(*orders)
        followed = utcnow() - self._job_follows
        orders = [
            o
            for o in orders
            if o.bracket_id is not None
            or o.created_at <= followed
            or o.state is OrderState.PARTIALLY_FILLED
        ]
        targets = touched_orders(orders, events)
        if catch_up:
            fresh = utcnow() - self._fresh_age
            targets += [
                o
                for o in orders
                if o not in targets
                and not (o.state is OrderState.SUBMITTING and o.updated_at > fresh)
            ]
        for order in targets:
            try:
                await self._settle(order.id)
            except ExchangeError as exc:
                self._log.warning("monitor_settle_failed", order_id=order.id, error=str(exc))
        positions = {e.market: e for e in events if isinstance(e, PositionEvent)}
        if positions and user_id is not None:
            await self._record_positions(user_id, list(positions.values()))
        if self._after_sync is not None:
            await self._after_sync(ref)

    def _left_to_jobs(self, ref: SubaccountRef, events: Sequence[SubaccountEvent]) -> bool:
        """Whether the events are only news of orders that jobs of this process follow (an
        order placed, filled: its order, fills and position), which they record themselves,
        woken by :attr:`_wake`; a job that stops following leaves later news to the monitor
        (and an order left open to the reconcile cron)."""
        if self._followed is None:
            return False
        markets: set[str] = set()
        positions: set[str] = set()
        for event in events:
            if isinstance(event, OrderEvent):
                client_id: int | None = event.client_id
            elif isinstance(event, FillEvent):
                client_id = event.order_client_id
            elif isinstance(event, PositionEvent):
                positions.add(event.market)
                continue
            else:
                return False
            if client_id is None or not self._followed(
                ref.owner_address, ref.subaccount_number, client_id
            ):
                return False
            markets.add(event.market)
        return bool(markets) and positions <= markets

    async def _record_positions(self, user_id: int, positions: list[PositionEvent]) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            now = utcnow()
            for position in positions:
                await uow.positions.record(
                    user_id=user_id,
                    paper=False,
                    market=position.market,
                    side=position.side,
                    size=position.size,
                    entry_price=position.entry_price,
                    at=now,
                )
            await uow.commit()
