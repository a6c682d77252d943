"""Run the paper venue's matching: resting limits and stop-loss / take-profit triggers."""

from __future__ import annotations

import structlog

from core.exchange.paper.venue import PaperExchange
from workers.context import WorkerContext

log = structlog.get_logger(__name__)


async def paper_triggers(ctx: WorkerContext) -> int:
    """Match every paper trader with live orders against the current oracle prices.

    Returns:
        How many paper fills were made.
    """
    sessionmaker = ctx["sessionmaker"]
    venue = ctx["exchanges"].venue
    made = 0
    for user_id in await PaperExchange.users_with_live_orders(sessionmaker):
        fills = await PaperExchange(sessionmaker, user_id, venue).check_triggers()
        made += len(fills)
    if made:
        log.info("paper_orders_matched", fills=made)
    return made
