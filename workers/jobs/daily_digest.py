"""Queue the daily digests that are due (each trader's chosen hour, in their timezone)."""

from __future__ import annotations

import structlog

from workers.context import WorkerContext

log = structlog.get_logger(__name__)


async def daily_digest(ctx: WorkerContext) -> int:
    """Write every due digest to the outbox, once per trader and local day.

    Runs every few minutes; a digest is keyed in PostgreSQL, so a re-run, a second worker
    or a restart sends nothing twice, and a worker that was down catches up for a while.

    Returns:
        How many digests were queued.
    """
    queued = await ctx["digest"].run()
    if queued:
        log.info("digests_queued", queued=queued)
    return queued
