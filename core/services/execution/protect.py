"""The settler's protection hook: an order that is not an entry filled (a leg, a close, a
manual order), so the protection of the position it touched takes a step now, instead of
at the next cron tick. One-cancels-other is per bracket (:mod:`core.services.protection`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.uow import UnitOfWork
from core.exchange.port import Exchange

if TYPE_CHECKING:  # the service is built on the settler that holds this hook
    from core.services.protection.service import ProtectionService


class Protector:
    """Hands an order's fill to the protection service (bound once both exist).

    Args:
        sessionmaker: Database sessions.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._service: ProtectionService | None = None

    def bind(self, service: ProtectionService) -> None:
        """The service the hook calls."""
        self._service = service

    async def cancel_siblings(self, order_id: int, *, exchange: Exchange) -> int:
        """A step for the brackets of the position ``order_id`` traded: a filled leg cancels
        the sibling of its own bracket only; a close cancels the legs of a flat position.

        Args:
            order_id: The order that filled.
            exchange: Unused: the service builds the venue of each position it steps.

        Returns:
            How many open brackets the position had.
        """
        if self._service is None:
            return 0
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id)
            if order is None:
                return 0
            brackets = await uow.brackets.open_in_group(order.user_id, order.paper, order.market)
            ids = [bracket.id for bracket in brackets]
        if ids:
            await self._service.advance(ids[0])
        return len(ids)
