"""Enqueue accepted alerts whose job never reached Redis (nothing accepted is lost)."""

from __future__ import annotations

from core.adapters.arq_queue import ArqJobQueue
from core.services.alert_sweeper import AlertSweeper
from workers.context import WorkerContext


async def sweep_alerts(ctx: WorkerContext) -> int:
    """Run one sweep over the worker's own Redis connection.

    Returns:
        How many alerts were enqueued.
    """
    report = await AlertSweeper(ctx["sessionmaker"]).sweep(ArqJobQueue(ctx["redis"]))
    return report.enqueued
