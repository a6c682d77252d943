"""Protection that a killed job, a lost wake-up or a missed fill left behind: a step for
every position whose brackets are due (see :mod:`core.services.protection`)."""

from __future__ import annotations

from core.adapters.arq_queue import ArqJobQueue
from workers.context import WorkerContext


async def advance_brackets(ctx: WorkerContext) -> int:
    """Advance due brackets, then wake the notification sender if any were looked at.

    Returns:
        How many brackets were looked at.
    """
    looked_at = await ctx["execution"].protection.advance_due()
    if looked_at:
        await ArqJobQueue(ctx["redis"]).nudge_notifications()
    return looked_at
