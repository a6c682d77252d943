"""Received alerts (the intake's own inserts are in :mod:`core.db.repositories.intake`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Alert, Order
from core.domain.states import OPEN_ALERT_STATES, AlertState, sources_of


class AlertRepository:
    """Access to ``alerts``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, alert_id: int) -> Alert | None:
        """An alert by id."""
        return await self._session.get(Alert, alert_id)

    async def recent(self, user_id: int, limit: int = 10) -> Sequence[Alert]:
        """The user's latest alerts, newest first, accepted or refused."""
        rows = await self._session.scalars(
            select(Alert)
            .where(Alert.user_id == user_id)
            .order_by(Alert.received_at.desc(), Alert.id.desc())
            .limit(limit)
        )
        return rows.all()

    @staticmethod
    def transition(alert: Alert, to: AlertState, **values: object) -> bool:
        """Move an alert to ``to`` if :data:`~core.domain.states.ALERT_TRANSITIONS` allows it
        from the state the alert is in: the one way an alert's state changes after its insert
        (the hot path's move to PROCESSING is derived from the same table).

        Args:
            alert: The row, loaded in the caller's unit of work.
            to: The state to move to.
            **values: Other columns written with the move.

        Returns:
            Whether the alert moved (False: it had already moved on).
        """
        if alert.state not in sources_of(to):
            return False
        alert.state = to
        for name, value in values.items():
            setattr(alert, name, value)
        return True

    async def lock_unqueued(self, received_before: datetime, limit: int) -> Sequence[int]:
        """Ids of accepted alerts that never reached the queue, oldest first, locked.

        Concurrent sweepers skip each other's rows (``SKIP LOCKED``); the partial index
        ``ix_alerts_unqueued`` keeps this cheap however large the table grows.
        """
        rows = await self._session.scalars(
            select(Alert.id)
            .where(
                Alert.state == AlertState.ACCEPTED,
                Alert.enqueued_at.is_(None),
                Alert.received_at < received_before,
            )
            .order_by(Alert.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return rows.all()

    async def waiting_since(self, enqueued_before: datetime, limit: int) -> Sequence[int]:
        """Ids of accepted alerts queued before ``enqueued_before`` that no worker picked up.

        Their job may have been lost with Redis (a restart without persistence): the sweeper
        enqueues them again under the same job id, which is a no-op while the job still exists.
        """
        rows = await self._session.scalars(
            select(Alert.id)
            .where(
                Alert.state == AlertState.ACCEPTED,
                Alert.enqueued_at.is_not(None),
                Alert.enqueued_at < enqueued_before,
            )
            .order_by(Alert.enqueued_at)
            .limit(limit)
        )
        return rows.all()

    async def lock_unfinished(self, received_before: datetime, limit: int) -> Sequence[Alert]:
        """Accepted or processing alerts without an order, received before
        ``received_before``, locked (``SKIP LOCKED``), oldest first."""
        rows = await self._session.scalars(
            select(Alert)
            .where(
                Alert.state.in_(sorted(OPEN_ALERT_STATES)),
                Alert.received_at < received_before,
                # An alert with an order is finished by its order's reconciliation.
                ~exists().where(Order.alert_id == Alert.id),
            )
            .order_by(Alert.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return rows.all()

    async def mark_enqueued(self, alert_ids: Sequence[int], at: datetime) -> None:
        """Record that these alerts' jobs are queued."""
        if alert_ids:
            await self._session.execute(
                update(Alert)
                .where(Alert.id.in_(alert_ids), Alert.enqueued_at.is_(None))
                .values(enqueued_at=at)
            )
