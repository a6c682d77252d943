"""Executing alerts: from an accepted alert to an order on the exchange, exactly once.

The protocol that makes a retried job, a killed worker or a lost answer harmless:

1. The order row is written **before** anything leaves the process: a client id from the
   subaccount's counter, the signed transaction bytes, state ``SUBMITTING``, committed.
2. Then the bytes are broadcast. Whatever happens next (answer, timeout, crash), the order's
   outcome is decided by asking the exchange about that client id, never by sending a new
   order: an order the exchange has not seen is re-broadcast **byte for byte** while it can
   still land (the chain deduplicates identical bytes), and declared expired once its
   ``good_til_block`` has passed.
3. Every later step (fills, notifications, the alert's final state) is an idempotent write:
   fills are unique per exchange fill id, notifications per dedupe key, states move only
   forward (:meth:`~core.db.repositories.orders.OrderRepository.transition`).

The job and the reconciliation cron both run :meth:`ExecutionService.settle`; whichever comes
second finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.alerts.schema import AlertOrder
from core.db.base import utcnow
from core.db.models import Alert, Order, User
from core.db.repositories.execution import ExecutionStore, NewOrder
from core.db.uow import UnitOfWork
from core.domain.compliance import ComplianceStatus
from core.domain.preferences import Preferences
from core.domain.states import AlertState, OrderPurpose, OrderSide, OrderState, PositionSide
from core.exchange.errors import (
    ExchangeError,
    ExchangeUnavailableError,
    OrderAlreadyKnownError,
    PermanentExchangeError,
    RetryableExchangeError,
    UnknownOutcomeError,
)
from core.exchange.grid import GridError, worst_price
from core.exchange.orders import OrderFlags, OrderKind, OrderRequest, SignedTx, TimeInForce
from core.exchange.port import Account, Exchange, Fill, OpenOrder, Position
from core.exchange.provider import ExchangeProvider, StoredKey, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.planning import (
    NothingToDoError,
    OrderPlan,
    PlanRefusedError,
    RefusalKind,
    plan_order,
    protective_prices,
)
from core.texts import trade as texts

#: How long the job waits for a short-term order's outcome before leaving it to the cron.
DEFAULT_SETTLE_TIMEOUT = 20.0
#: Indexer polling interval while waiting for an outcome (blocks are ~0.5 s).
DEFAULT_POLL_INTERVAL = 0.25
#: A broadcast order shows on the Indexer a block later at the earliest: the first look
#: waits that long, so a burst of orders does not spend its CPU on empty answers.
FIRST_LOOK_DELAY = 0.3
#: Blocks past ``good_til_block`` after which an order unknown to the Indexer cannot exist.
INDEXER_LAG_BLOCKS = 3
#: Take-profit / stop-loss orders rest this long.
PROTECTION_LIFETIME = timedelta(days=28)
#: Worst price of a triggered protective order, as a multiple of the trader's slippage.
PROTECTION_SLIPPAGE_FACTOR = 3
#: Indexer statuses after which an order can no longer fill.
_DONE_STATUSES = frozenset({"FILLED", "CANCELED"})

NOTIFY_FILLED = "trade_filled"
NOTIFY_REJECTED = "trade_rejected"
NOTIFY_FAILED = "alert_failed"
NOTIFY_EXPIRED = "alert_expired"
NOTIFY_PAUSED = "trading_paused"
NOTIFY_PROTECTION = "protection_placed"


class Outcome(StrEnum):
    """What :meth:`ExecutionService.execute_alert` did."""

    FILLED = "filled"
    OPEN = "open"  # resting on the book, or outcome not known yet (the cron follows it)
    UNFILLED = "unfilled"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    ALREADY_DONE = "already_done"
    MISSING = "missing"


class _Unset:
    """Marks an argument that was not given (None is a meaningful value)."""


_UNSET = _Unset()


class RetryLaterError(Exception):
    """A transient failure before anything was sent: run the job again after ``defer`` s."""

    def __init__(self, reason: str, defer: float) -> None:
        super().__init__(reason)
        self.defer = defer


@dataclass(frozen=True, slots=True)
class _Context:
    """What one execution needs about the trader."""

    user_id: int
    chat_id: int
    prefs: Preferences
    compliance: ComplianceStatus | None
    paused: bool


def _age(fields: dict[str, object], received_at: datetime, now: datetime) -> timedelta:
    """How old an alert is: from TradingView's time when sent and earlier than receipt."""
    sent = fields.get("time")
    oldest = received_at
    if isinstance(sent, str):
        try:
            oldest = min(oldest, datetime.fromisoformat(sent))
        except (ValueError, TypeError):
            oldest = received_at
    return now - oldest


def _parse_compliance(status: str | None) -> ComplianceStatus | None:
    try:
        return ComplianceStatus(status) if status else None
    except ValueError:
        return None


def _chat_of(user: User) -> int:
    return user.notify_chat_id or user.telegram_id


def _compliance(user: User) -> ComplianceStatus | None:
    return _parse_compliance(user.compliance_status)


def _flags(order: Order) -> OrderFlags:
    return OrderFlags(order.order_flags)


def _day_start(now: datetime, prefs: Preferences) -> datetime:
    local = now.astimezone(prefs.zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


class ExecutionService:
    """Turns alerts into orders and follows each order to its outcome.

    Args:
        sessionmaker: Database sessions.
        exchanges: Builds each trader's exchange.
        store: The hot path's SQL (load, client id, order insert).
        max_lag: Oldest alert still executed (``ALERT_MAX_LAG_SECONDS``).
        settle_timeout: How long a job waits for an order's outcome.
        poll_interval: Indexer polling interval while waiting.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchanges: ExchangeProvider,
        store: ExecutionStore,
        *,
        max_lag: timedelta,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._exchanges = exchanges
        self._store = store
        self._max_lag = max_lag
        self._settle_timeout = settle_timeout
        self._poll_interval = poll_interval
        self._log = get_logger(__name__)

    # ------------------------------------------------------------------ alerts

    async def execute_alert(self, alert_id: int) -> Outcome:
        """Execute one accepted alert (idempotent: a second run resumes or does nothing).

        Raises:
            RetryLaterError: The exchange could not be asked before anything was sent.
        """
        picked_up = utcnow()
        # One round trip for the alert, its trader and their key: this is the hot path.
        loaded = await self._store.load(alert_id)
        if loaded is None:
            self._log.warning("alert_missing", alert_id=alert_id)
            return Outcome.MISSING
        if loaded.state not in (AlertState.ACCEPTED, AlertState.PROCESSING):
            return Outcome.ALREADY_DONE
        ctx = _Context(
            user_id=loaded.user_id,
            chat_id=loaded.chat_id,
            prefs=Preferences.from_json(loaded.settings),
            compliance=_parse_compliance(loaded.compliance_status),
            paused=loaded.paused,
        )
        order_alert = AlertOrder.from_fields(loaded.fields)
        if loaded.has_orders:
            # A previous run committed an order: follow it, never plan another one.
            return await self._resume(alert_id, ctx, order_alert)
        age = _age(loaded.fields, loaded.received_at, picked_up)
        if age > self._max_lag:
            await self._expire(alert_id, ctx, age)
            return Outcome.EXPIRED
        if ctx.paused:
            async with UnitOfWork(self._sessionmaker) as uow:
                alert = await uow.alerts.get(alert_id)
                if alert is not None:
                    await self._finish_alert(uow, alert, AlertState.SKIPPED, "trading is paused")
                await uow.commit()
            return Outcome.SKIPPED
        key = StoredKey.of(loaded)
        return await self._place_for_alert(
            alert_id, ctx, order_alert, credential=key, picked_up=picked_up
        )

    async def _resume(self, alert_id: int, ctx: _Context, alert: AlertOrder) -> Outcome:
        async with UnitOfWork(self._sessionmaker) as uow:
            order_ids = [order.id for order in await uow.orders.for_alert(alert_id)]
        exchange = await self._exchange_or_fail(alert_id, ctx, alert)
        if exchange is None:
            return Outcome.FAILED
        outcome = Outcome.OPEN
        for order_id in order_ids:
            outcome = await self.settle(order_id, exchange=exchange, wait=True)
        await self.protect(order_ids[0], exchange=exchange)
        return outcome

    async def _expire(self, alert_id: int, ctx: _Context, age: timedelta) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            alert = await uow.alerts.get(alert_id)
            if alert is None:
                return
            await self._finish_alert(
                uow, alert, AlertState.EXPIRED, f"{age.total_seconds():.0f} s old"
            )
            await uow.notifications.enqueue(
                chat_id=ctx.chat_id,
                user_id=ctx.user_id,
                kind=NOTIFY_EXPIRED,
                text=texts.expired_text(
                    alert.id,
                    alert.strategy,
                    alert.market,
                    age.total_seconds(),
                    int(self._max_lag.total_seconds()),
                ),
                dedupe_key=f"alert:{alert.id}:expired",
            )
            await uow.commit()
        self._log.info("alert_expired", alert_id=alert_id, age_s=round(age.total_seconds(), 1))

    async def _exchange_or_fail(
        self,
        alert_id: int,
        ctx: _Context,
        alert: AlertOrder,
        *,
        credential: StoredKey | _Unset | None = _UNSET,
    ) -> Exchange | None:
        try:
            if isinstance(credential, _Unset):
                return await self._exchanges.for_user(ctx.user_id, ctx.prefs)
            return self._exchanges.for_credential(ctx.user_id, ctx.prefs, credential)
        except TradingNotReadyError as exc:
            await self._fail_alert(alert_id, ctx, alert.market, exc.reason)
            return None

    async def _place_for_alert(
        self,
        alert_id: int,
        ctx: _Context,
        alert: AlertOrder,
        *,
        credential: StoredKey | None,
        picked_up: datetime,
    ) -> Outcome:
        try:
            return await self._plan_and_place(
                alert_id, ctx, alert, credential=credential, picked_up=picked_up
            )
        except GridError as exc:
            # Nothing was committed: the alert fails with the reason instead of hanging.
            await self._fail_alert(alert_id, ctx, alert.market, exc.reason)
            return Outcome.FAILED

    async def _plan_and_place(
        self,
        alert_id: int,
        ctx: _Context,
        alert: AlertOrder,
        *,
        credential: StoredKey | None,
        picked_up: datetime,
    ) -> Outcome:
        started = time.perf_counter()
        exchange = await self._exchange_or_fail(alert_id, ctx, alert, credential=credential)
        if exchange is None:
            return Outcome.FAILED
        now = utcnow()
        timings = {"exchange": time.perf_counter()}
        try:
            market, (account, positions), height = await asyncio.gather(
                exchange.market(alert.market),
                self._account_and_positions(exchange),
                exchange.block_height(),
            )
        except KeyError:
            await self._fail_alert(
                alert_id, ctx, alert.market, f"{alert.market} is not a market on dYdX"
            )
            return Outcome.FAILED
        except ExchangeUnavailableError as exc:
            raise RetryLaterError(str(exc), defer=1.0) from None
        timings["market_data"] = time.perf_counter()
        realized_today = Decimal(0)
        if ctx.prefs.daily_loss_limit_usd is not None:
            async with UnitOfWork(self._sessionmaker) as uow:
                realized_today = await uow.fills.realized_since(
                    ctx.user_id, _day_start(now, ctx.prefs), paper=exchange.is_paper
                )
        try:
            plan = plan_order(
                alert,
                prefs=ctx.prefs,
                market=market,
                account=account,
                positions=positions,
                compliance=ctx.compliance,
                realized_today=realized_today,
                now=now,
            )
        except NothingToDoError as exc:
            async with UnitOfWork(self._sessionmaker) as uow:
                row = await uow.alerts.get(alert_id)
                if row is not None:
                    await self._finish_alert(uow, row, AlertState.SKIPPED, str(exc))
                await uow.commit()
            return Outcome.SKIPPED
        except PlanRefusedError as exc:
            await self._fail_alert(
                alert_id,
                ctx,
                alert.market,
                exc.message,
                pause=exc.kind is RefusalKind.DAILY_LOSS,
            )
            return Outcome.FAILED
        order_id, signed = await self._commit_order(
            exchange,
            ctx,
            plan,
            alert_id=alert_id,
            purpose=plan.purpose,
            height=height,
            now=now,
            picked_up=picked_up,
        )
        timings["signed_committed"] = time.perf_counter()
        await self._first_broadcast(exchange, order_id, signed)
        timings["broadcast"] = time.perf_counter()
        # Where the time went, per stage, in ms (the /why timeline has the wall-clock view).
        previous = started
        spent = {}
        for stage, moment in timings.items():
            spent[f"{stage}_ms"] = round((moment - previous) * 1000, 2)
            previous = moment
        self._log.info("alert_order_sent", alert_id=alert_id, order_id=order_id, **spent)
        await asyncio.sleep(FIRST_LOOK_DELAY)
        outcome = await self.settle(order_id, exchange=exchange, wait=True)
        await self.protect(order_id, exchange=exchange)
        return outcome

    async def _account_and_positions(self, exchange: Exchange) -> tuple[Account, list[Position]]:
        account, positions = await asyncio.gather(exchange.account(), exchange.positions())
        return account, positions

    async def _commit_order(
        self,
        exchange: Exchange,
        ctx: _Context,
        plan: OrderPlan,
        *,
        alert_id: int | None,
        purpose: OrderPurpose,
        height: int,
        now: datetime,
        kind: OrderKind | None = None,
        trigger_price: Decimal | None = None,
        parent_order_id: int | None = None,
        picked_up: datetime | None = None,
    ) -> tuple[int, SignedTx]:
        """Allocate a client id, sign, and commit the order as SUBMITTING (step 1).

        With ``picked_up``, the alert moves to PROCESSING in the same transaction.
        """
        kind = kind or plan.kind
        short_term = plan.good_til_block_time is None and kind in (
            OrderKind.MARKET,
            OrderKind.LIMIT,
        )
        client_id = await self._store.allocate_client_id(
            exchange.owner_address, exchange.subaccount_number
        )
        request = OrderRequest(
            market=plan.market,
            side=plan.side,
            size=plan.size,
            kind=kind,
            price=plan.price,
            client_id=client_id,
            trigger_price=trigger_price,
            reduce_only=plan.reduce_only,
            time_in_force=plan.time_in_force,
            good_til_block=(
                exchange.capabilities.short_term_good_til_block(height) if short_term else None
            ),
            good_til_block_time=None if short_term else plan.good_til_block_time,
        )
        signed = await exchange.sign_order(request)
        order_id = await self._store.insert_order(
            NewOrder(
                user_id=ctx.user_id,
                alert_id=alert_id,
                parent_order_id=parent_order_id,
                purpose=purpose.value,
                paper=exchange.is_paper,
                market=plan.market,
                owner_address=exchange.owner_address,
                subaccount_number=exchange.subaccount_number,
                client_id=client_id,
                order_flags=int(request.flags),
                side=plan.side.value,
                order_type=kind.value,
                size=plan.size,
                price=plan.price,
                trigger_price=trigger_price,
                reduce_only=plan.reduce_only,
                time_in_force=plan.time_in_force.value,
                good_til_block=request.good_til_block,
                good_til_block_time=request.good_til_block_time,
                tx_bytes=signed.tx_bytes,
                tx_hash=signed.tx_hash,
                reference_price=plan.reference_price,
                position_before=plan.position_before,
                entry_before=plan.entry_before,
                signed_at=utcnow(),
            ),
            picked_up=picked_up if alert_id is not None else None,
        )
        self._log.info(
            "order_committed",
            order_id=order_id,
            alert_id=alert_id,
            market=plan.market,
            side=plan.side.value,
            size=str(plan.size),
            client_id=client_id,
            paper=exchange.is_paper,
        )
        return order_id, signed

    async def _first_broadcast(self, exchange: Exchange, order_id: int, signed: SignedTx) -> None:
        """Step 2: send the committed bytes and record what the node said."""
        sent_at = utcnow()
        try:
            result = await exchange.broadcast(signed)
        except PermanentExchangeError as exc:
            await self._reject(order_id, exc, sent_at)
            return
        except UnknownOutcomeError:
            await self._transition(
                order_id, (OrderState.SUBMITTING,), state=OrderState.UNKNOWN, submitted_at=sent_at
            )
            self._log.warning("order_outcome_unknown", order_id=order_id)
            return
        except RetryableExchangeError as exc:
            # Nothing is known to have landed; settle() re-broadcasts the same bytes.
            self._log.warning("order_broadcast_retry", order_id=order_id, reason=str(exc))
            return
        # One statement on the hot path's pool: the next alert of a burst waits for this CPU.
        await self._store.mark_submitted(
            order_id, submitted_at=sent_at, accepted_at=utcnow(), tx_hash=result.tx_hash
        )

    async def _transition(
        self, order_id: int, expected: Sequence[OrderState], **values: object
    ) -> bool:
        async with UnitOfWork(self._sessionmaker) as uow:
            moved = await uow.orders.transition(order_id, expected, **values)
            await uow.commit()
        return moved

    async def _reject(self, order_id: int, exc: PermanentExchangeError, sent_at: datetime) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id, lock=True)
            if order is None or order.state.is_final:
                return
            order.state = OrderState.REJECTED
            order.exchange_code = exc.code
            order.codespace = exc.codespace[:32]
            order.error = exc.reason
            order.submitted_at = order.submitted_at or sent_at
            order.closed_at = utcnow()
            await self._after_final(uow, order, fills=[])
            await uow.commit()
        self._log.warning(
            "order_rejected", order_id=order_id, code=exc.code, codespace=exc.codespace
        )

    # ------------------------------------------------------------------ settling

    async def settle(
        self, order_id: int, *, exchange: Exchange | None = None, wait: bool = False
    ) -> Outcome:
        """Find out what became of an order and record it (step 2 and 3; idempotent).

        Args:
            order_id: Our order id.
            exchange: The trader's exchange (built if not given).
            wait: Keep polling until the order is final or ``settle_timeout`` passes.
        """
        deadline = time.monotonic() + (self._settle_timeout if wait else 0)
        last_broadcast = 0.0
        while True:
            async with UnitOfWork(self._sessionmaker) as uow:
                order = await uow.orders.get(order_id)
                if order is None:
                    return Outcome.MISSING
                user = await uow.users.get(order.user_id)
                if user is None:
                    return Outcome.MISSING
                prefs = Preferences.from_json(user.settings)
                uow.detach(order)
            if order.state.is_final:
                return self._outcome_of(order)
            if exchange is None:
                try:
                    exchange = await self._exchanges.for_user(order.user_id, prefs)
                except TradingNotReadyError:
                    return Outcome.OPEN
                if exchange.is_paper != order.paper:
                    # The trader switched paper mode since; follow the order where it lives.
                    exchange = await self._exchanges.for_user(
                        order.user_id, prefs.updated(paper=order.paper)
                    )
            try:
                found = await exchange.find_order(order.market, order.client_id, _flags(order))
                if found is not None:
                    if await self._apply(exchange, order, found):
                        if order.purpose is not OrderPurpose.ENTRY and found.filled_size > 0:
                            await self.cancel_siblings(order_id, exchange=exchange)
                        return await self._final_outcome(order_id)
                elif order.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
                    if time.monotonic() - last_broadcast >= 1.0:
                        last_broadcast = time.monotonic()
                        if await self._rebroadcast_or_expire(exchange, order):
                            return await self._final_outcome(order_id)
                elif await self._expired_unseen(exchange, order):
                    return await self._final_outcome(order_id)
            except ExchangeUnavailableError as exc:
                self._log.warning("settle_exchange_unavailable", order_id=order_id, error=str(exc))
            if time.monotonic() >= deadline:
                return Outcome.OPEN
            await asyncio.sleep(self._poll_interval)

    async def _final_outcome(self, order_id: int) -> Outcome:
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            uow.detach(order)
        return self._outcome_of(order) if order is not None else Outcome.MISSING

    @staticmethod
    def _outcome_of(order: Order) -> Outcome:
        if order.state is OrderState.REJECTED:
            return Outcome.REJECTED
        if order.filled_size > 0:
            return Outcome.FILLED
        if order.state.is_final:
            return Outcome.UNFILLED
        return Outcome.OPEN

    async def _rebroadcast_or_expire(self, exchange: Exchange, order: Order) -> bool:
        """An order the exchange has not seen: send its bytes again, or declare it expired.

        Returns:
            Whether the order reached a final state.
        """
        if await self._expired_unseen(exchange, order):
            return True
        if order.tx_bytes is None or order.tx_hash is None:
            return False
        signed = SignedTx(order.tx_bytes, order.tx_hash)
        sent_at = utcnow()
        try:
            result = await exchange.broadcast(signed)
        except OrderAlreadyKnownError:
            # The venue knows this order id: it was placed after all.
            await self._transition(
                order.id,
                (OrderState.SUBMITTING, OrderState.UNKNOWN),
                state=OrderState.SUBMITTED,
            )
            return False
        except PermanentExchangeError as exc:
            await self._reject(order.id, exc, sent_at)
            return True
        except UnknownOutcomeError:
            await self._transition(order.id, (OrderState.SUBMITTING,), state=OrderState.UNKNOWN)
            return False
        except RetryableExchangeError as exc:
            self._log.warning("order_rebroadcast_retry", order_id=order.id, reason=str(exc))
            return False
        self._log.info("order_rebroadcast", order_id=order.id, already=result.already_placed)
        await self._transition(
            order.id,
            (OrderState.SUBMITTING, OrderState.UNKNOWN),
            state=OrderState.SUBMITTED,
            submitted_at=order.submitted_at or sent_at,
            accepted_at=utcnow(),
        )
        return False

    async def _expired_unseen(self, exchange: Exchange, order: Order) -> bool:
        """Mark a short-term order the exchange never saw as expired once it cannot land."""
        if order.good_til_block is None:
            return False
        height = await exchange.block_height()
        if height < order.good_til_block + INDEXER_LAG_BLOCKS:
            return False
        # One last look: the Indexer may have caught up since the caller asked.
        found = await exchange.find_order(order.market, order.client_id, _flags(order))
        if found is not None:
            return await self._apply(exchange, order, found)
        async with UnitOfWork(self._sessionmaker) as uow:
            row = await uow.orders.get(order.id, lock=True)
            if row is None or row.state.is_final:
                return True
            row.state = OrderState.EXPIRED
            row.error = "the order expired before it reached the order book"
            row.closed_at = utcnow()
            await self._after_final(uow, row, fills=[])
            await uow.commit()
        self._log.warning("order_expired_unseen", order_id=order.id)
        return True

    async def _apply(self, exchange: Exchange, order: Order, found: OpenOrder) -> bool:
        """Record what the exchange says about the order.

        Returns:
            Whether the order is now final.
        """
        status = found.status
        short_term = order.good_til_block is not None
        done = status in _DONE_STATUSES or (short_term and status == "BEST_EFFORT_CANCELED")
        fills: list[Fill] = []
        if found.filled_size > 0:
            fills = [
                fill
                for fill in await exchange.fills(order.market, limit=100)
                if fill.order_id == found.order_id
            ]
            if sum((f.size for f in fills), Decimal(0)) < found.filled_size:
                # The Indexer has the order's total but not yet every fill: look again soon.
                return False
        if not done:
            state = OrderState.PARTIALLY_FILLED if fills else OrderState.SUBMITTED
            await self._transition(
                order.id,
                (OrderState.SUBMITTING, OrderState.UNKNOWN, OrderState.SUBMITTED),
                state=state,
            )
            if fills:
                await self._record_fills(order.id, fills, final=False)
            return False
        positions = await exchange.positions()
        await self._record_fills(order.id, fills, final=True, positions=positions)
        return True

    async def _record_fills(
        self,
        order_id: int,
        fills: list[Fill],
        *,
        final: bool,
        positions: list[Position] | None = None,
    ) -> None:
        """Write fills, totals and (when final) the outcome, the position and the message."""
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id, lock=True)
            if order is None or order.state.is_final:
                return
            held = order.position_before or Decimal(0)
            entry = order.entry_before
            total_size = Decimal(0)
            total_cost = Decimal(0)
            total_fee = Decimal(0)
            total_pnl = Decimal(0)
            for fill in sorted(fills, key=lambda f: (f.created_at, f.fill_id)):
                pnl, held, entry = _realize(held, entry, fill)
                pnl -= fill.fee
                await uow.fills.add(
                    user_id=order.user_id,
                    order_id=order.id,
                    paper=order.paper,
                    exchange_fill_id=fill.fill_id[:64],
                    market=fill.market,
                    side=fill.side,
                    size=fill.size,
                    price=fill.price,
                    fee=fill.fee,
                    liquidity=fill.liquidity[:8],
                    realized_pnl=pnl,
                    filled_at=fill.created_at,
                )
                total_size += fill.size
                total_cost += fill.size * fill.price
                total_fee += fill.fee
                total_pnl += pnl
            order.filled_size = total_size
            order.fee = total_fee
            order.realized_pnl = total_pnl
            order.average_price = total_cost / total_size if total_size else None
            if total_size:
                order.filled_at = order.filled_at or max(f.created_at for f in fills)
            if final:
                order.state = OrderState.FILLED if total_size >= order.size else OrderState.CANCELED
                order.closed_at = utcnow()
                if positions is not None:
                    current = next((p for p in positions if p.market == order.market), None)
                    await uow.positions.record(
                        user_id=order.user_id,
                        paper=order.paper,
                        market=order.market,
                        side=current.side if current else None,
                        size=current.size if current else Decimal(0),
                        entry_price=current.entry_price if current else None,
                        at=utcnow(),
                    )
                await self._after_final(uow, order, fills=fills, positions=positions)
            await uow.commit()
        if final:
            self._log.info(
                "order_settled",
                order_id=order_id,
                filled=str(total_size),
                average_price=str(order.average_price),
            )

    async def _after_final(
        self,
        uow: UnitOfWork,
        order: Order,
        *,
        fills: list[Fill],
        positions: list[Position] | None = None,
    ) -> None:
        """In the transaction that makes an order final: the alert's state and the message."""
        user = await uow.users.get(order.user_id)
        alert = await uow.alerts.get(order.alert_id) if order.alert_id is not None else None
        if user is None:
            return
        chat = _chat_of(user)
        alert_id = alert.id if alert is not None else None
        strategy = alert.strategy if alert is not None else None
        if order.state is OrderState.REJECTED:
            kind, text = (
                NOTIFY_REJECTED,
                texts.rejected_text(
                    alert_id, strategy, order.market, order.error or "refused", paper=order.paper
                ),
            )
            alert_state = AlertState.FAILED
        elif order.filled_size > 0:
            current = next((p for p in positions or [] if p.market == order.market), None)
            kind, text = (
                NOTIFY_FILLED,
                texts.filled_text(
                    texts.FillSummary(
                        alert_id=alert_id,
                        strategy=strategy,
                        market=order.market,
                        side=order.side,
                        size=order.size,
                        filled_size=order.filled_size,
                        average_price=order.average_price or Decimal(0),
                        fee=order.fee,
                        reference_price=order.reference_price,
                        realized_pnl=order.realized_pnl if _reduced(order) else None,
                        position_side=current.side if current else None,
                        position_size=current.size if current else Decimal(0),
                        paper=order.paper,
                        purpose=order.purpose.value,
                    )
                ),
            )
            alert_state = AlertState.EXECUTED
        else:
            reason = order.error or (
                "nothing filled within the worst acceptable price "
                "(raise slippage_pct in the alert or in /settings)"
            )
            kind, text = (
                NOTIFY_FAILED,
                texts.unfilled_text(alert_id, strategy, order.market, reason, paper=order.paper),
            )
            alert_state = AlertState.FAILED
        if order.purpose is not OrderPurpose.MANUAL or user.notify_chat_id is not None:
            # A manual order is answered in the chat that asked; a channel still hears of it.
            await uow.notifications.enqueue(
                chat_id=chat,
                user_id=user.id,
                kind=kind,
                text=text,
                dedupe_key=f"order:{order.id}:final",
            )
        if alert is not None and order.purpose in (OrderPurpose.ENTRY, OrderPurpose.CLOSE):
            await self._finish_alert(uow, alert, alert_state, order.error)
        prefs = Preferences.from_json(user.settings)
        if order.realized_pnl < 0 and prefs.daily_loss_limit_usd is not None and not user.paused:
            realized = await uow.fills.realized_since(
                user.id, _day_start(utcnow(), prefs), paper=order.paper
            )
            if realized <= -prefs.daily_loss_limit_usd:
                user.paused = True
                await uow.notifications.enqueue(
                    chat_id=chat,
                    user_id=user.id,
                    kind=NOTIFY_PAUSED,
                    text=texts.paused_for_loss_text(-realized, prefs.daily_loss_limit_usd),
                    dedupe_key=f"order:{order.id}:paused",
                )

    # ------------------------------------------------------------------ manual orders

    async def close_position(
        self, user_id: int, exchange: Exchange, prefs: Preferences, position: Position
    ) -> int:
        """Close a position now with a reduce-only market order (``/close``, ``/panic``).

        Returns:
            Our order id; :meth:`settle` has already waited for its outcome.
        """
        market = await exchange.market(position.market)
        side = OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY
        held = position.size if position.side is PositionSide.LONG else -position.size
        plan = OrderPlan(
            market=position.market,
            side=side,
            size=position.size,
            kind=OrderKind.MARKET,
            price=worst_price(side, market.oracle_price, prefs.slippage_pct / 100, market),
            reduce_only=True,
            time_in_force=TimeInForce.IOC,
            purpose=OrderPurpose.MANUAL,
            reference_price=market.oracle_price,
            notional=position.size * market.oracle_price,
            position_before=held,
            entry_before=position.entry_price,
        )
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            uow.detach(user)
        if user is None:
            raise TradingNotReadyError("unknown user")
        ctx = _Context(
            user_id=user_id,
            chat_id=_chat_of(user),
            prefs=prefs,
            compliance=_compliance(user),
            paused=user.paused,
        )
        order_id, signed = await self._commit_order(
            exchange,
            ctx,
            plan,
            alert_id=None,
            purpose=OrderPurpose.MANUAL,
            height=await exchange.block_height(),
            now=utcnow(),
        )
        await self._first_broadcast(exchange, order_id, signed)
        await self.settle(order_id, exchange=exchange, wait=True)
        return order_id

    # ------------------------------------------------------------------ protection

    async def protect(self, order_id: int, *, exchange: Exchange) -> None:
        """Place the take-profit / stop-loss an entry's alert asked for, once it has filled.

        Each protective order is its own row (one per alert and purpose), placed with the same
        commit-then-broadcast protocol, so a re-run never places a second one.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            if (
                order is None
                or order.purpose is not OrderPurpose.ENTRY
                or order.alert_id is None
                or order.filled_size <= 0
                or order.average_price is None
            ):
                return
            alert = await uow.alerts.get(order.alert_id)
            user = await uow.users.get(order.user_id)
            if alert is None or user is None:
                return
            existing = {child.purpose for child in await uow.orders.children(order.id)}
            prefs = Preferences.from_json(user.settings)
            uow.detach(order, alert, user)
            ctx = _Context(
                user_id=user.id,
                chat_id=_chat_of(user),
                prefs=prefs,
                compliance=_compliance(user),
                paused=user.paused,
            )
        request = AlertOrder.from_fields(alert.fields)
        if request.trail_pct is not None:
            async with UnitOfWork(self._sessionmaker) as uow:
                await uow.notifications.enqueue(
                    chat_id=ctx.chat_id,
                    user_id=ctx.user_id,
                    kind=NOTIFY_PROTECTION,
                    text=texts.no_trailing_stop_text(order.market),
                    dedupe_key=f"order:{order.id}:no-trailing",
                )
                await uow.commit()
        if not any((request.tp_price, request.tp_pct, request.sl_price, request.sl_pct)):
            return
        try:
            market = await exchange.market(order.market)
            take, stop = protective_prices(request, order.side, order.average_price, market)
        except (KeyError, GridError, ExchangeError) as exc:
            self._log.warning("protection_not_priced", order_id=order_id, error=str(exc))
            return
        exit_side = OrderSide.SELL if order.side is OrderSide.BUY else OrderSide.BUY
        slippage = min(prefs.slippage_pct * PROTECTION_SLIPPAGE_FACTOR / 100, Decimal("0.5"))
        placed: dict[OrderPurpose, Decimal] = {}
        for purpose, kind, trigger in (
            (OrderPurpose.TAKE_PROFIT, OrderKind.TAKE_PROFIT, take),
            (OrderPurpose.STOP_LOSS, OrderKind.STOP, stop),
        ):
            if trigger is None or purpose in existing:
                continue
            plan = OrderPlan(
                market=order.market,
                side=exit_side,
                size=order.filled_size,
                kind=kind,
                price=worst_price(exit_side, trigger, slippage, market),
                reduce_only=True,
                time_in_force=TimeInForce.IOC,
                purpose=purpose,
                reference_price=trigger,
                notional=order.filled_size * trigger,
                position_before=Decimal(0),
                entry_before=None,
                good_til_block_time=utcnow() + PROTECTION_LIFETIME,
            )
            try:
                child_id, signed = await self._commit_order(
                    exchange,
                    ctx,
                    plan,
                    alert_id=order.alert_id,
                    purpose=purpose,
                    height=0,
                    now=utcnow(),
                    kind=kind,
                    trigger_price=trigger,
                    parent_order_id=order.id,
                )
            except (GridError, ExchangeError) as exc:
                self._log.warning("protection_not_signed", order_id=order_id, error=str(exc))
                continue
            await self._first_broadcast(exchange, child_id, signed)
            placed[purpose] = trigger
        if placed:
            async with UnitOfWork(self._sessionmaker) as uow:
                await uow.notifications.enqueue(
                    chat_id=ctx.chat_id,
                    user_id=ctx.user_id,
                    kind=NOTIFY_PROTECTION,
                    text=texts.protection_text(
                        order.market,
                        placed.get(OrderPurpose.TAKE_PROFIT),
                        placed.get(OrderPurpose.STOP_LOSS),
                        paper=order.paper,
                    ),
                    dedupe_key=f"order:{order.id}:protection",
                )
                await uow.commit()

    async def cancel_siblings(self, order_id: int, *, exchange: Exchange) -> int:
        """Cancel the other protective orders of a position that a fill closed (no native OCO
        on dYdX: an untriggered stop outlives the position it protected).

        Returns:
            How many cancels were accepted.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                return 0
            if order.purpose in (OrderPurpose.CLOSE, OrderPurpose.MANUAL):
                delta = order.filled_size if order.side is OrderSide.BUY else -order.filled_size
                if (order.position_before or Decimal(0)) + delta != 0:
                    return 0  # a partial close keeps its protection
            live = [
                o
                for o in await uow.orders.live_conditionals(order.user_id, order.market)
                if o.id != order.id and o.paper == order.paper
            ]
            uow.detach(*live)
        cancelled = 0
        for sibling in live:
            try:
                signed = await exchange.sign_cancel(
                    sibling.market,
                    sibling.client_id,
                    _flags(sibling),
                    good_til_block_time=sibling.good_til_block_time,
                )
                await exchange.broadcast(signed)
            except ExchangeError as exc:
                self._log.warning("sibling_cancel_failed", order_id=sibling.id, error=str(exc))
                continue
            await self._transition(
                sibling.id,
                (OrderState.SUBMITTED, OrderState.UNKNOWN, OrderState.SUBMITTING),
                state=OrderState.CANCELED,
                closed_at=utcnow(),
                error="cancelled: the position was closed",
            )
            cancelled += 1
        return cancelled

    # ------------------------------------------------------------------ failures

    async def _finish_alert(
        self, uow: UnitOfWork, alert: Alert, state: AlertState, reason: str | None
    ) -> None:
        if alert.state in (AlertState.ACCEPTED, AlertState.PROCESSING):
            alert.started_at = alert.started_at or utcnow()
            alert.state = state
            alert.reason = reason[:500] if reason else None
            alert.finished_at = utcnow()

    async def _fail_alert(
        self, alert_id: int, ctx: _Context, market: str | None, reason: str, *, pause: bool = False
    ) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            alert = await uow.alerts.get(alert_id)
            if alert is None:
                return
            await self._finish_alert(uow, alert, AlertState.FAILED, reason)
            await uow.notifications.enqueue(
                chat_id=ctx.chat_id,
                user_id=ctx.user_id,
                kind=NOTIFY_FAILED,
                text=texts.failed_text(alert.id, alert.strategy, market, reason),
                dedupe_key=f"alert:{alert.id}:failed",
            )
            if pause:
                user = await uow.users.get(ctx.user_id)
                if user is not None:
                    user.paused = True
            await uow.commit()
        self._log.info("alert_failed", alert_id=alert_id, reason=reason)

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self, *, older_than: timedelta = timedelta(seconds=3)) -> int:
        """Settle orders whose outcome is open and that nobody touched for ``older_than``.

        Runs from a cron: it finishes what a killed worker or a timed-out job left behind.

        Returns:
            How many orders were looked at.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            order_ids = await uow.orders.unsettled(utcnow() - older_than)
        for order_id in order_ids:
            try:
                await self.settle(order_id)
                await self._touch(order_id)
            except ExchangeError as exc:
                self._log.warning("reconcile_failed", order_id=order_id, error=str(exc))
        return len(order_ids)

    async def _touch(self, order_id: int) -> None:
        # Moves an order still open to the back of the reconciliation line.
        await self._transition(
            order_id,
            (
                OrderState.SUBMITTING,
                OrderState.UNKNOWN,
                OrderState.SUBMITTED,
                OrderState.PARTIALLY_FILLED,
            ),
            updated_at=utcnow(),
        )

    async def expire_stuck_alerts(self, *, older_than: timedelta) -> int:
        """Expire alerts no run finished and that are past executing: a run that crashed
        before committing an order, or a job arq gave up on.

        Returns:
            How many alerts were expired.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            count = 0
            for alert in await uow.alerts.lock_unfinished(utcnow() - older_than, 100):
                user = await uow.users.get(alert.user_id)
                await self._finish_alert(
                    uow, alert, AlertState.EXPIRED, "no order was placed in time"
                )
                if user is not None:
                    await uow.notifications.enqueue(
                        chat_id=_chat_of(user),
                        user_id=user.id,
                        kind=NOTIFY_EXPIRED,
                        text=texts.expired_text(
                            alert.id,
                            alert.strategy,
                            alert.market,
                            (utcnow() - alert.received_at).total_seconds(),
                            int(self._max_lag.total_seconds()),
                        ),
                        dedupe_key=f"alert:{alert.id}:expired",
                    )
                count += 1
            await uow.commit()
        return count


def _reduced(order: Order) -> bool:
    """Whether the order reduced (or closed) a position, i.e. realized PnL beyond its fee."""
    held = order.position_before or Decimal(0)
    return held != 0 and (held > 0) == (order.side is OrderSide.SELL)


def _realize(
    held: Decimal, entry: Decimal | None, fill: Fill
) -> tuple[Decimal, Decimal, Decimal | None]:
    """PnL a fill realizes against a position, and the position after it.

    Args:
        held: Signed position before the fill (positive long).
        entry: Its entry price.
        fill: The fill.

    Returns:
        ``(realized_pnl_before_fees, held_after, entry_after)``.
    """
    delta = fill.size if fill.side is OrderSide.BUY else -fill.size
    pnl = Decimal(0)
    if held and entry is not None and (held > 0) != (delta > 0):
        closed = min(abs(held), abs(delta))
        direction = 1 if held > 0 else -1
        pnl = (fill.price - entry) * closed * direction
    after = held + delta
    if after == 0:
        return pnl, after, None
    if held == 0 or (held > 0) != (after > 0):
        return pnl, after, fill.price  # opened, or flipped: the rest opened at this price
    if abs(after) > abs(held):
        base = entry if entry is not None else fill.price
        return pnl, after, (base * abs(held) + fill.price * abs(delta)) / abs(after)
    return pnl, after, entry


__all__ = ["ExecutionService", "Outcome", "RetryLaterError"]
