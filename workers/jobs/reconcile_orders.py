"""Finish what a killed worker or a timed-out job left: orders with an open outcome."""

from __future__ import annotations

from datetime import timedelta

from core.adapters.arq_queue import ArqJobQueue
from workers.context import WorkerContext


async def reconcile_orders(ctx: WorkerContext) -> int:
    """Settle orders left in SUBMITTING, UNKNOWN or SUBMITTED, and expire stuck alerts.

    Returns:
        How many orders were looked at.
    """
    execution = ctx["execution"]
    looked_at = await execution.reconcile()
    lag = timedelta(seconds=ctx["settings"].alert_max_lag_seconds)
    # An alert whose run died before committing an order is past saving once it is stale.
    expired = await execution.expire_stuck_alerts(older_than=lag + timedelta(seconds=30))
    if looked_at or expired:
        await ArqJobQueue(ctx["redis"]).nudge_notifications()
    return looked_at
