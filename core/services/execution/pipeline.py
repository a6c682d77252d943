"""The execution pipeline, top-down: from a loaded alert (or a ``/close``) to a settled order.

Alert: load → resume an earlier run's order, or expire / skip → the trader's exchange →
plan against live market data → commit the signed order (:mod:`.place`) → broadcast →
settle (:mod:`.settle`) → a protection step for the entry's bracket
(:mod:`core.services.protection`), which was committed with the entry.
Manual close: plan → commit → broadcast → settle → a protection step for the subaccount.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.alerts.schema import AlertOrder
from core.db.base import utcnow
from core.db.repositories.execution import ExecutionRepository, NewBracket
from core.db.repositories.settlement import SettlementRepository
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import OPEN_ALERT_STATES, OrderPurpose, OrderSide, PositionSide
from core.exchange.errors import ExchangeUnavailableError
from core.exchange.grid import GridError
from core.exchange.port import Account, Exchange, Position
from core.exchange.provider import ExchangeProvider, StoredKey, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.execution.alerts import AlertOutcomes
from core.services.execution.expire import AlertExpiry
from core.services.execution.outcome import Outcome, RetryLaterError
from core.services.execution.place import OrderPlacer, close_plan
from core.services.execution.protect import Protector
from core.services.execution.reconcile import Reconciler
from core.services.execution.record import OrderRecorder
from core.services.execution.record_final import FinalRecorder
from core.services.execution.settle import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SETTLE_TIMEOUT,
    OrderSettler,
)
from core.services.execution.trader import Trader, alert_age, day_start
from core.services.planning import (
    NothingToDoError,
    OrderPlan,
    PlanRefusedError,
    RefusalKind,
    plan_order,
)
from core.services.priority import Placement, PlacementGate
from core.services.protection.renewal import LegLifetime
from core.services.protection.service import ProtectionService
from core.texts import trade as texts

#: A broadcast order shows on the Indexer a block later at the earliest: the first look
#: waits that long, so a burst of orders does not spend its CPU on empty answers (or, where
#: this process streams the subaccount, until the stream tells the order's news).
FIRST_LOOK_DELAY = 0.3


class _Unset:
    """Marks an argument that was not given (None is a meaningful value)."""


_UNSET = _Unset()


class ExecutionService:
    """Turns alerts (and manual closes) into orders and follows each order to its outcome.

    Args:
        sessionmaker: Database sessions.
        exchanges: Builds each trader's exchange.
        store: The hot path's repository (load, client id, order insert).
        max_lag: Oldest alert still executed (``ALERT_MAX_LAG_SECONDS``).
        settle_timeout: How long a job waits for an order's outcome.
        poll_interval: Indexer polling interval while waiting.
        leg_lifetime: How long take-profit / stop-loss legs rest, and when they are renewed
            (``PROTECTION_*`` settings).
        gate: This process's placing-first gate: settling yields to alerts being placed.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchanges: ExchangeProvider,
        store: ExecutionRepository,
        *,
        max_lag: timedelta,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        leg_lifetime: LegLifetime | None = None,
        gate: PlacementGate | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.gate = gate or PlacementGate()
        self._exchanges = exchanges
        self._store = store
        self._max_lag = max_lag
        recorder = OrderRecorder(sessionmaker, FinalRecorder(SettlementRepository(store)))
        self._placer = OrderPlacer(store, recorder)
        protector = Protector(sessionmaker)
        self._settler = OrderSettler(
            sessionmaker,
            exchanges,
            recorder,
            protector,
            settle_timeout=settle_timeout,
            poll_interval=poll_interval,
            gate=self.gate,
        )
        self.protection = ProtectionService(
            sessionmaker, exchanges, self._placer, recorder, self._settler, leg_lifetime
        )
        protector.bind(self.protection)
        self._reconciler = Reconciler(sessionmaker, self._settler, recorder)
        self._alerts = AlertOutcomes(sessionmaker)
        self._expiry = AlertExpiry(sessionmaker, max_lag=max_lag)
        self._log = get_logger(__name__)

    @property
    def settler(self) -> OrderSettler:
        """The settler of this pipeline (the position monitor settles what it sees with it)."""
        return self._settler

    async def execute_alert(
        self,
        alert_id: int,
        *,
        placement: Placement | None = None,
        subaccount: tuple[str, int] | None = None,
    ) -> Outcome:
        """Execute one accepted alert (idempotent: a second run resumes or does nothing).

        Args:
            alert_id: The accepted alert.
            placement: The alert's place in this process's placing-first gate (its job's
                claim); done once the order is broadcast, or the alert ends without one.
            subaccount: ``(owner, number)`` of the live subaccount intake saw for the
                trader: read from the venue while the alert loads, and used for the plan
                only if the loaded key trades that subaccount.

        Raises:
            RetryLaterError: The exchange could not be asked before anything was sent.
        """
        placing = placement if placement is not None else self.gate.place()
        try:
            return await self._execute(alert_id, placing, subaccount)
        finally:
            placing.done()

    async def _execute(
        self, alert_id: int, placing: Placement, subaccount: tuple[str, int] | None
    ) -> Outcome:
        picked_up = utcnow()
        # The subaccount's state is the plan's other input: ask the venue for it now, so
        # its round trip runs alongside the alert's load instead of after it.
        early = _EarlyRead.start(self._exchanges, subaccount)
        # One round trip for the alert, its trader and their key: this is the hot path.
        loaded = await self._store.load(alert_id)
        if loaded is None:
            self._log.warning("alert_missing", alert_id=alert_id)
            return Outcome.MISSING
        if loaded.state not in OPEN_ALERT_STATES:
            return Outcome.ALREADY_DONE
        trader = Trader.of_alert(loaded)
        request = AlertOrder.from_fields(loaded.fields)
        if loaded.has_orders:
            # A previous run committed an order: follow it, never plan another one.
            placing.done()
            return await self._resume(alert_id, trader, request)
        age = alert_age(loaded.fields, loaded.received_at, picked_up)
        if age > self._max_lag:
            await self._expiry.expire(alert_id, trader, age)
            return Outcome.EXPIRED
        if trader.paused:
            await self._alerts.skip(alert_id, texts.TRADING_PAUSED)
            return Outcome.SKIPPED
        key = StoredKey.of(loaded)
        try:
            return await self._place(
                alert_id,
                trader,
                request,
                key,
                picked_up,
                placing,
                loaded.reserved_client_id,
                early,
            )
        except GridError as exc:
            # Nothing was committed: the alert fails with the reason instead of hanging.
            await self._alerts.fail(alert_id, trader, request.market, exc.reason)
            return Outcome.FAILED

    async def _place(
        self,
        alert_id: int,
        trader: Trader,
        request: AlertOrder,
        key: StoredKey | None,
        picked_up: datetime,
        placing: Placement,
        reserved_client_id: tuple[str, int, int] | None,
        early: _EarlyRead | None,
    ) -> Outcome:
        started = time.perf_counter()
        exchange = await self._exchange_or_fail(alert_id, trader, request, credential=key)
        if exchange is None:
            return Outcome.FAILED
        timings = {"exchange": time.perf_counter()}
        planned = await self._plan(alert_id, trader, request, exchange, timings, early)
        if isinstance(planned, Outcome):
            return planned
        plan, height = planned
        bracket = _bracket_of(request, plan)
        order_id, signed, client_id = await self._placer.commit(
            exchange,
            trader,
            plan,
            alert_id=alert_id,
            purpose=plan.purpose,
            height=height,
            picked_up=picked_up,
            bracket=bracket,
            reserved_client_id=reserved_client_id,
        )
        timings["signed_committed"] = time.perf_counter()
        # This job follows the order to its end: the monitor leaves its events to it.
        with self._settler.followed.following(
            exchange.owner_address, exchange.subaccount_number, client_id
        ):
            await self._placer.broadcast(exchange, order_id, signed)
            timings["broadcast"] = time.perf_counter()
            placing.done()  # what follows is bookkeeping: it yields to alerts still placing
            self._log_timings(alert_id, order_id, started, timings, plan, client_id)
            await self._settler.followed.next_look(
                exchange.owner_address,
                exchange.subaccount_number,
                client_id,
                within=FIRST_LOOK_DELAY,
            )
            outcome = await self._settler.settle(order_id, exchange=exchange, wait=True)
        if bracket is not None:  # a bracket exists only if committed with the entry
            await self._protect(order_id)
        return outcome

    async def _protect(self, entry_id: int) -> None:
        """A protection step for the entry's bracket, if it asked for one."""
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            bracket = await uow.brackets.for_entry(entry_id)
            bracket_id = bracket.id if bracket is not None else None
        if bracket_id is not None:
            await self.protection.advance(bracket_id)

    async def _plan(
        self,
        alert_id: int,
        trader: Trader,
        request: AlertOrder,
        exchange: Exchange,
        timings: dict[str, float],
        early: _EarlyRead | None = None,
    ) -> tuple[OrderPlan, int] | Outcome:
        """The order to place and the block height to place it at, or why there is none."""
        now = utcnow()
        state = early.of(exchange) if early is not None else None
        if state is None:
            state = asyncio.gather(exchange.account(), exchange.positions())
        try:
            market, (account, positions), height = await asyncio.gather(
                exchange.market(request.market), state, exchange.block_height()
            )
        except KeyError:
            reason = texts.not_a_market(request.market)
            await self._alerts.fail(alert_id, trader, request.market, reason)
            return Outcome.FAILED
        except ExchangeUnavailableError as exc:
            raise RetryLaterError(str(exc), defer=1.0) from None
        timings["market_data"] = time.perf_counter()
        realized_today = Decimal(0)
        if trader.prefs.daily_loss_limit_usd is not None:
            async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
                realized_today = await uow.fills.realized_since(
                    trader.user_id, day_start(now, trader.prefs), paper=exchange.is_paper
                )
        try:
            plan = plan_order(
                request,
                prefs=trader.prefs,
                market=market,
                account=account,
                positions=positions,
                compliance=trader.compliance,
                realized_today=realized_today,
                now=now,
            )
        except NothingToDoError as exc:
            await self._alerts.skip(alert_id, str(exc))
            return Outcome.SKIPPED
        except PlanRefusedError as exc:
            pause = exc.kind is RefusalKind.DAILY_LOSS
            await self._alerts.fail(alert_id, trader, request.market, exc.message, pause=pause)
            return Outcome.FAILED
        return plan, height

    async def _resume(self, alert_id: int, trader: Trader, request: AlertOrder) -> Outcome:
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            order_ids = [order.id for order in await uow.orders.for_alert(alert_id, legs=False)]
        exchange = await self._exchange_or_fail(alert_id, trader, request)
        if exchange is None:
            return Outcome.FAILED
        outcome = Outcome.OPEN
        for order_id in order_ids:
            outcome = await self._settler.settle(order_id, exchange=exchange, wait=True)
        await self._protect(order_ids[0])
        return outcome

    async def _exchange_or_fail(
        self,
        alert_id: int,
        trader: Trader,
        request: AlertOrder,
        *,
        credential: StoredKey | _Unset | None = _UNSET,
    ) -> Exchange | None:
        try:
            if isinstance(credential, _Unset):
                return await self._exchanges.for_user(trader.user_id, trader.prefs)
            return self._exchanges.for_credential(trader.user_id, trader.prefs, credential)
        except TradingNotReadyError as exc:
            await self._alerts.fail(alert_id, trader, request.market, exc.reason)
            return None

    def _log_timings(
        self,
        alert_id: int,
        order_id: int,
        started: float,
        timings: dict[str, float],
        plan: OrderPlan,
        client_id: int,
    ) -> None:
        # The alert's one event on its way to the chain (written after the broadcast): the
        # order, and where the time went per stage in ms (/why has the wall-clock view).
        previous = started
        spent = {}
        for stage, moment in timings.items():
            spent[f"{stage}_ms"] = round((moment - previous) * 1000, 2)
            previous = moment
        self._log.info(
            "alert_order_sent",
            alert_id=alert_id,
            order_id=order_id,
            market=plan.market,
            side=plan.side.value,
            size=str(plan.size),
            client_id=client_id,
            **spent,
        )

    async def close_position(
        self, user_id: int, exchange: Exchange, prefs: Preferences, position: Position
    ) -> int:
        """Close a position now with a reduce-only market order (``/close``, ``/panic``).

        Returns:
            Our order id; settling has already waited for its outcome.
        """
        plan = close_plan(position, await exchange.market(position.market), prefs)
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            uow.detach(user)
        if user is None:
            raise TradingNotReadyError("unknown user")
        order_id, signed, _ = await self._placer.commit(
            exchange,
            Trader.of_user(user, prefs),
            plan,
            alert_id=None,
            purpose=OrderPurpose.MANUAL,
            height=await exchange.block_height(),
        )
        await self._placer.broadcast(exchange, order_id, signed)
        await self._settler.settle(order_id, exchange=exchange, wait=True)
        # The position is smaller or flat: its legs shrink or go, and the trader hears why.
        await self.protection.advance_for_subaccount(
            exchange.owner_address, exchange.subaccount_number
        )
        return order_id

    async def reconcile(self, *, older_than: timedelta = timedelta(seconds=3)) -> int:
        """Settle orders left open by a killed worker or a timed-out job (a cron).

        Returns:
            How many orders were looked at.
        """
        return await self._reconciler.reconcile(older_than=older_than)

    async def expire_stuck_alerts(self, *, older_than: timedelta) -> int:
        """Expire alerts no run finished and that are past executing (a cron).

        Returns:
            How many alerts were expired.
        """
        return await self._expiry.expire_stuck(older_than=older_than)


class _EarlyRead:
    """A live subaccount's collateral and positions, asked for before the alert loaded."""

    def __init__(
        self, subaccount: tuple[str, int], future: asyncio.Future[tuple[Account, list[Position]]]
    ) -> None:
        self._subaccount = subaccount
        self._future = future

    @classmethod
    def start(
        cls, exchanges: ExchangeProvider, subaccount: tuple[str, int] | None
    ) -> _EarlyRead | None:
        """Start the read, when the job was told the subaccount."""
        if subaccount is None:
            return None
        return cls(subaccount, exchanges.read_subaccount(*subaccount))

    def of(self, exchange: Exchange) -> asyncio.Future[tuple[Account, list[Position]]] | None:
        """The read, if it is of ``exchange``'s subaccount (a paper exchange, or a key
        replaced since intake, gets None: the caller asks its own exchange)."""
        if exchange.is_paper or self._subaccount != (
            exchange.owner_address,
            exchange.subaccount_number,
        ):
            return None
        return self._future


def _bracket_of(request: AlertOrder, plan: OrderPlan) -> NewBracket | None:
    """The protection an entry asked for, committed with it (None when it asked for none)."""
    asked = (
        request.tp_price,
        request.tp_pct,
        request.sl_price,
        request.sl_pct,
        request.trail_pct,
        request.be_trigger_pct,
    )
    if plan.purpose is not OrderPurpose.ENTRY or all(value is None for value in asked):
        return None
    return NewBracket(
        position_side=(PositionSide.LONG if plan.side is OrderSide.BUY else PositionSide.SHORT),
        tp_price=request.tp_price,
        tp_pct=request.tp_pct,
        sl_price=request.sl_price,
        sl_pct=request.sl_pct,
        trail_pct=request.trail_pct,
        be_trigger_pct=request.be_trigger_pct,
    )
