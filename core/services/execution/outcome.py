"""What an execution step reports: its outcome, or that it should run again later."""

from __future__ import annotations

from enum import StrEnum

from core.db.models import Order
from core.domain.states import OrderState


class Outcome(StrEnum):
    """What :meth:`~core.services.execution.pipeline.ExecutionService.execute_alert` did."""

    FILLED = "filled"
    OPEN = "open"  # resting on the book, or outcome not known yet (the cron follows it)
    UNFILLED = "unfilled"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    ALREADY_DONE = "already_done"
    MISSING = "missing"


class RetryLaterError(Exception):
    """A transient failure before anything was sent: run the job again after ``defer`` s."""

    def __init__(self, reason: str, defer: float) -> None:
        super().__init__(reason)
        self.defer = defer


def outcome_of(order: Order) -> Outcome:
    """The outcome an order's recorded state stands for."""
    if order.state is OrderState.REJECTED:
        return Outcome.REJECTED
    if order.filled_size > 0:
        return Outcome.FILLED
    if order.state.is_final:
        return Outcome.UNFILLED
    return Outcome.OPEN
