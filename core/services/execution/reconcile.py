"""Reconciliation: finish what a killed worker or a timed-out job left open."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.uow import UnitOfWork
from core.exchange.errors import ExchangeError
from core.runtime.logs import get_logger
from core.services.execution.record import OrderRecorder
from core.services.execution.settle import OrderSettler


class Reconciler:
    """Settles orders whose outcome is still open and nobody is following.

    Args:
        sessionmaker: Database sessions.
        settler: Settles each order.
        recorder: Stamps an order still open, so the next run takes others first.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settler: OrderSettler,
        recorder: OrderRecorder,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settler = settler
        self._recorder = recorder
        self._log = get_logger(__name__)

    async def reconcile(self, *, older_than: timedelta = timedelta(seconds=3)) -> int:
        """Settle orders whose outcome is open and that nobody touched for ``older_than``.

        Runs from a cron: it finishes what a killed worker or a timed-out job left behind.

        Returns:
            How many orders were looked at.
        """
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            order_ids = await uow.orders.unsettled(utcnow() - older_than)
        for order_id in order_ids:
            try:
                await self._settler.settle(order_id)
                # Moves an order still open to the back of the reconciliation line.
                await self._recorder.touch(order_id)
            except ExchangeError as exc:
                self._log.warning("reconcile_failed", order_id=order_id, error=str(exc))
        return len(order_ids)
