"""Drain the notifications outbox into Telegram."""

from __future__ import annotations

import structlog

from workers.context import WorkerContext

log = structlog.get_logger(__name__)


async def deliver_notifications(ctx: WorkerContext) -> int:
    """Send every due outbox message; failures are rescheduled by the service.

    Returns:
        How many messages were sent.
    """
    report = await ctx["notifications"].deliver_due(ctx["sender"])
    if report.sent or report.retried or report.failed:
        log.info(
            "notifications_delivered",
            sent=report.sent,
            retried=report.retried,
            failed=report.failed,
        )
    return report.sent
