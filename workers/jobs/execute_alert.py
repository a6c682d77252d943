"""Execute one accepted alert: plan, commit, broadcast, settle, notify (idempotent)."""

from __future__ import annotations

from arq import Retry

from core.services.execution.outcome import Outcome, RetryLaterError
from workers.context import WorkerContext

#: Outcomes that wrote a message to the outbox: send it now rather than at the next tick.
_NOTIFYING = frozenset(
    {
        Outcome.FILLED,
        Outcome.UNFILLED,
        Outcome.REJECTED,
        Outcome.FAILED,
        Outcome.EXPIRED,
    }
)


async def execute_alert(ctx: WorkerContext, alert_id: int) -> str:
    """Run the alert's execution; transient failures before sending are retried by arq.

    Args:
        ctx: The worker context.
        alert_id: Id of the accepted alert (the job id is ``alert:{alert_id}``).

    Returns:
        The outcome's name (kept by arq as the job result).
    """
    # Placing first: this process's bookkeeping waits until the order is broadcast.
    placement = ctx["priority"].take(ctx["job_id"])
    try:
        outcome = await ctx["execution"].execute_alert(alert_id, placement=placement)
    except RetryLaterError as exc:
        raise Retry(defer=exc.defer * ctx["job_try"]) from None
    if outcome in _NOTIFYING:
        # This worker sends the message it wrote, in the background (no queue round trip).
        ctx["notifications"].deliver_soon(ctx["sender"])
    return outcome.value
