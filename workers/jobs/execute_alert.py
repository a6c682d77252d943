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


async def execute_alert(
    ctx: WorkerContext,
    alert_id: int,
    owner_address: str | None = None,
    subaccount_number: int | None = None,
) -> str:
    """Run the alert's execution; transient failures before sending are retried by arq.

    Args:
        ctx: The worker context.
        alert_id: Id of the accepted alert (the job id is ``alert:{alert_id}``).
        owner_address: The live subaccount intake saw for the alert's trader (a hint: read
            from the venue while the alert loads, used only if the alert's key trades it).
        subaccount_number: That subaccount's number.

    Returns:
        The outcome's name (kept by arq as the job result).
    """
    # Placing first: this process's bookkeeping waits until the order is broadcast.
    placement = ctx["priority"].take(ctx["job_id"])
    try:
        subaccount = (
            (owner_address, subaccount_number)
            if owner_address is not None and subaccount_number is not None
            else None
        )
        outcome = await ctx["execution"].execute_alert(
            alert_id, placement=placement, subaccount=subaccount
        )
    except RetryLaterError as exc:
        raise Retry(defer=exc.defer * ctx["job_try"]) from None
    if outcome in _NOTIFYING:
        # This worker sends the message it wrote, in the background (no queue round trip).
        ctx["notifications"].deliver_soon(ctx["sender"])
    return outcome.value
