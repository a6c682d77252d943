"""Do one manual request asked in the bot (``/close``, ``/panic``, a protection change): only
the worker holds the keys that sign it. Idempotent: the request row in PostgreSQL says whether
it was done, and its outcome reaches the trader through the outbox exactly once."""

from __future__ import annotations

from datetime import timedelta

from core.adapters.arq_queue import ArqJobQueue
from core.services.jobs import RUN_MANUAL_REQUEST
from workers.context import WorkerContext

#: A request still not started this long after it was asked lost its enqueue: queue it again.
SWEEP_AFTER = timedelta(seconds=5)


async def run_manual_request(ctx: WorkerContext, request_id: int) -> bool:
    """Run the request, then send its outcome now rather than at the outbox's next run.

    Returns:
        Whether this run did it (False: done already, or another run holds it).
    """
    done = await ctx["manual"].run(request_id)
    if done:
        # This worker sends the outcome it wrote, in the background (no queue round trip).
        ctx["notifications"].deliver_soon(ctx["sender"])
    return done


async def sweep_manual_requests(ctx: WorkerContext) -> int:
    """Queue the requests whose job never reached Redis (the bot saw Redis down), and those
    whose job gave up mid-way (they resume; after a few runs the trader is told to check).

    Returns:
        How many were queued.
    """
    queue = ArqJobQueue(ctx["redis"])
    queued = 0
    for request_id, job_id in await ctx["manual"].pending(older_than=SWEEP_AFTER):
        if await queue.enqueue(RUN_MANUAL_REQUEST, request_id, job_id=job_id):
            queued += 1
    return queued
