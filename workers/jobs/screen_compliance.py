"""Re-screen owner addresses with the dYdX Indexer's compliance screen (daily per user)."""

from __future__ import annotations

import structlog

from workers.context import WorkerContext

log = structlog.get_logger(__name__)

#: Users asked about per run: at most about a minute of Indexer calls (0.1 s apart), so the
#: run fits its short timeout; the next run resumes with those still due.
USERS_PER_RUN = 300


async def screen_compliance(ctx: WorkerContext) -> int:
    """Screen every user with a trading key who was not screened for about a day.

    Runs every few minutes and takes at most :data:`USERS_PER_RUN` of those due, so it is
    idempotent, bounded, and a missed or cut-short run is caught up by the next. Users whose
    status changed are told through the outbox.

    Returns:
        How many users' status changed.
    """
    report = await ctx["credentials"].screen_all(max_users=USERS_PER_RUN)
    if report.screened or report.failed:
        log.info(
            "compliance_screened",
            screened=report.screened,
            changed=report.changed,
            failed=report.failed,
            aborted=report.aborted,
        )
    return report.changed
