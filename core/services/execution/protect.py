"""The settler's protection hook: an order traded (a leg, a close or a manual order that
filled, an entry whose fill grew), so the protection of the position it touched takes a step
now, instead of at the next cron tick. One-cancels-other is per bracket
(:mod:`core.services.protection`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.uow import UnitOfWork

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

    async def step_position(self, order_id: int) -> int:
        """A step for the brackets of the position ``order_id`` traded: a filled leg cancels
        the sibling of its own bracket only; a close cancels the legs of a flat position; an
        entry's grown fill grows its legs (the service builds the position's venue).

        Args:
            order_id: The order that filled.

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
