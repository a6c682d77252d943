"""Re-read the owners' authenticators of stored trading keys: daily per key (the cron), and
every key soon after a worker starts (queued by ``workers.context.startup``) (#13). A key that
may now do more than trade stops trading."""

from __future__ import annotations

import structlog

from core.services.key_watch import RECHECK_AFTER_START, RECHECK_INTERVAL
from workers.context import WorkerContext

log = structlog.get_logger(__name__)

#: Keys checked per batch: the cron takes one batch, the next run resumes with those due.
KEYS_PER_RUN = 300


async def recheck_keys(ctx: WorkerContext, after_start: bool = False) -> int:
    """Re-check the keys that are due.

    Args:
        ctx: The worker's context.
        after_start: Every key not checked in the last minutes (what changed while no worker
            ran), batch after batch; else one batch of the keys not checked for a day.

    Returns:
        How many keys stopped trading.
    """
    older_than = RECHECK_AFTER_START if after_start else RECHECK_INTERVAL
    stopped = 0
    while True:
        report = await ctx["key_watch"].recheck_due(older_than=older_than, max_keys=KEYS_PER_RUN)
        stopped += report.stopped
        if report.checked or report.failed:
            log.info(
                "keys_rechecked",
                checked=report.checked,
                stopped=report.stopped,
                failed=report.failed,
                aborted=report.aborted,
                after_start=after_start,
            )
        if not after_start or report.aborted or report.checked + report.failed < KEYS_PER_RUN:
            return stopped
