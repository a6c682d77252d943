"""Repair lost enqueues: accepted alerts whose job never reached Redis get one.

Intake commits an alert before enqueueing its job, so a Redis outage (or a crash between
the two) leaves committed alerts without a job. The sweeper finds them through the partial
index ``ix_alerts_unqueued`` and enqueues them under the same job id intake uses, so an
alert whose job did reach the queue is not queued twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.uow import UnitOfWork
from core.runtime.logs import get_logger
from core.services.jobs import EXECUTE_ALERT, JobQueue, alert_job_id

# Intake enqueues within half a second of committing: leave it that long and more.
DEFAULT_GRACE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did.

    Attributes:
        enqueued: Alerts whose job was queued (or found queued already).
        failed: Whether Redis failed during the sweep (the rest waits for the next one).
    """

    enqueued: int = 0
    failed: bool = False


class AlertSweeper:
    """Enqueues committed alerts that have no job."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._log = get_logger(__name__)

    async def sweep(
        self, queue: JobQueue, *, grace: timedelta = DEFAULT_GRACE, limit: int = 500
    ) -> SweepReport:
        """Enqueue up to ``limit`` alerts accepted more than ``grace`` ago and not queued.

        Args:
            queue: The job queue.
            grace: How long intake is left to enqueue an alert itself.
            limit: Most alerts handled in one sweep.
        """
        done: list[int] = []
        failed = False
        async with UnitOfWork(self._sessionmaker) as uow:
            ids = await uow.alerts.lock_unqueued(utcnow() - grace, limit)
            for alert_id in ids:
                try:
                    await queue.enqueue(EXECUTE_ALERT, alert_id, job_id=alert_job_id(alert_id))
                except (RedisError, OSError, TimeoutError) as exc:
                    self._log.warning("alert_sweep_enqueue_failed", error=type(exc).__name__)
                    failed = True
                    break
                done.append(alert_id)
            await uow.alerts.mark_enqueued(done, utcnow())
            await uow.commit()
        requeued = 0
        if not failed:
            requeued = await self._requeue_lost(queue, grace=grace, limit=limit)
            failed = requeued < 0
        if done or requeued > 0:
            self._log.info("alerts_swept", enqueued=len(done), requeued=max(requeued, 0))
        return SweepReport(enqueued=len(done) + max(requeued, 0), failed=failed)

    async def _requeue_lost(self, queue: JobQueue, *, grace: timedelta, limit: int) -> int:
        """Queue again alerts whose job vanished (Redis restarted without its data).

        Returns:
            How many jobs were really re-created, or -1 if Redis failed.
        """
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            ids = await uow.alerts.waiting_since(utcnow() - grace, limit)
        if not ids:
            return 0
        try:
            added = await queue.enqueue_many(
                EXECUTE_ALERT, [(alert_job_id(alert_id), alert_id) for alert_id in ids]
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._log.warning("alert_requeue_failed", error=type(exc).__name__)
            return -1
        return sum(added)
