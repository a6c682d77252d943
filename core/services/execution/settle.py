"""Settling an order: ask the exchange what became of it until it is final (steps 2 and 3).

An order the exchange has not seen is re-broadcast byte for byte while it can still land,
and declared expired once its ``good_til_block`` has passed; an order the exchange knows is
recorded as it reports it, fills and all.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Order
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import OrderPurpose, OrderState
from core.exchange.errors import (
    ExchangeUnavailableError,
    OrderAlreadyKnownError,
    PermanentExchangeError,
    RetryableExchangeError,
    UnknownOutcomeError,
)
from core.exchange.orders import SignedTx
from core.exchange.port import Exchange, Fill, OpenOrder
from core.exchange.provider import ExchangeProvider, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.execution.outcome import Outcome, outcome_of
from core.services.execution.protect import Protector
from core.services.execution.record import OrderRecorder
from core.services.execution.trader import flags_of

#: How long the job waits for a short-term order's outcome before leaving it to the cron.
DEFAULT_SETTLE_TIMEOUT = 20.0
#: Indexer polling interval while waiting for an outcome (blocks are ~0.5 s).
DEFAULT_POLL_INTERVAL = 0.25
#: Blocks past ``good_til_block`` after which an order unknown to the Indexer cannot exist.
INDEXER_LAG_BLOCKS = 3
#: Indexer statuses after which an order can no longer fill.
_DONE_STATUSES = frozenset({"FILLED", "CANCELED"})


class OrderSettler:
    """Follows orders to their outcome.

    Args:
        sessionmaker: Database sessions.
        exchanges: Builds each trader's exchange.
        recorder: Records what the exchange reports.
        protector: Cancels the protective siblings of an order that closed a position.
        settle_timeout: How long a waiting caller polls for an order's outcome.
        poll_interval: Indexer polling interval while waiting.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchanges: ExchangeProvider,
        recorder: OrderRecorder,
        protector: Protector,
        *,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._exchanges = exchanges
        self._recorder = recorder
        self._protector = protector
        self._settle_timeout = settle_timeout
        self._poll_interval = poll_interval
        self._log = get_logger(__name__)

    async def settle(
        self, order_id: int, *, exchange: Exchange | None = None, wait: bool = False
    ) -> Outcome:
        """Find out what became of an order and record it (idempotent).

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
                return outcome_of(order)
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
                found = await exchange.find_order(order.market, order.client_id, flags_of(order))
                if found is not None:
                    if await self._apply(exchange, order, found):
                        if order.purpose is not OrderPurpose.ENTRY and found.filled_size > 0:
                            await self._protector.cancel_siblings(order_id, exchange=exchange)
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
        return outcome_of(order) if order is not None else Outcome.MISSING

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
            await self._recorder.transition(order.id, OrderState.SUBMITTED)
            return False
        except PermanentExchangeError as exc:
            await self._recorder.reject(order.id, exc, sent_at)
            return True
        except UnknownOutcomeError:
            await self._recorder.transition(order.id, OrderState.UNKNOWN)
            return False
        except RetryableExchangeError as exc:
            self._log.warning("order_rebroadcast_retry", order_id=order.id, reason=str(exc))
            return False
        self._log.info("order_rebroadcast", order_id=order.id, already=result.already_placed)
        await self._recorder.transition(
            order.id,
            OrderState.SUBMITTED,
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
        found = await exchange.find_order(order.market, order.client_id, flags_of(order))
        if found is not None:
            return await self._apply(exchange, order, found)
        await self._recorder.expire_unseen(order.id)
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
            if fills:
                await self._recorder.transition(order.id, OrderState.PARTIALLY_FILLED)
                await self._recorder.record_fills(order.id, fills, final=False)
            else:
                # Still resting: re-marking it keeps the reconciler away while a job watches.
                await self._recorder.transition(order.id, OrderState.SUBMITTED, or_already=True)
            return False
        positions = await exchange.positions()
        await self._recorder.record_fills(order.id, fills, final=True, positions=positions)
        return True
