"""Re-screen owner addresses with the dYdX Indexer's compliance screen (daily per user)."""

from __future__ import annotations

import structlog

from workers.context import WorkerContext

log = structlog.get_logger(__name__)


async def screen_compliance(ctx: WorkerContext) -> int:
    """Screen every user with a trading key who was not screened for about a day.

    Runs hourly; each run takes only those due, so it is idempotent and a missed run is
    caught up by the next. Users whose status changed are told through the outbox.

    Returns:
        How many users' status changed.
    """
    report = await ctx["credentials"].screen_all()
    if report.screened or report.failed:
        log.info(
            "compliance_screened",
            screened=report.screened,
            changed=report.changed,
            failed=report.failed,
            aborted=report.aborted,
        )
    return report.changed
