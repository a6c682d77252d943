"""Re-read the owners' authenticators of stored trading keys: daily per key, and every key
soon after the worker starts (#13). A key that may now do more than trade stops trading."""

from __future__ import annotations

import structlog

from core.services.key_watch import RECHECK_AFTER_START, RECHECK_INTERVAL
from workers.context import WorkerContext

log = structlog.get_logger(__name__)

#: Keys checked per run: a bounded batch, the next run resumes with those still due.
KEYS_PER_RUN = 300


async def recheck_keys(ctx: WorkerContext) -> int:
    """Re-check the keys that are due (all of them, once, after a start).

    Returns:
        How many keys stopped trading.
    """
    after_start = not ctx.get("keys_rechecked")
    older_than = RECHECK_AFTER_START if after_start else RECHECK_INTERVAL
    report = await ctx["key_watch"].recheck_due(older_than=older_than, max_keys=KEYS_PER_RUN)
    if not report.aborted and report.checked < KEYS_PER_RUN:
        ctx["keys_rechecked"] = True
    if report.checked or report.failed:
        log.info(
            "keys_rechecked",
            checked=report.checked,
            stopped=report.stopped,
            failed=report.failed,
            aborted=report.aborted,
        )
    return report.stopped
