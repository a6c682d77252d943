"""Domain vocabulary shared by every layer: states, sides and purposes."""

from __future__ import annotations

from enum import StrEnum


class AlertState(StrEnum):
    """Lifecycle of a received TradingView alert."""

    ACCEPTED = "ACCEPTED"  # committed, waiting for a worker
    REJECTED = "REJECTED"  # refused at intake (auth passed, content failed); never executed
    PROCESSING = "PROCESSING"  # a worker has picked it up
    EXECUTED = "EXECUTED"  # its orders were placed (see orders for their outcome)
    SKIPPED = "SKIPPED"  # nothing to do (paused user, already flat, ...)
    EXPIRED = "EXPIRED"  # too old when its job ran
    FAILED = "FAILED"  # refused by risk limits or the exchange


class OrderState(StrEnum):
    """Order state machine: RECEIVED → SUBMITTING → SUBMITTED → a final state."""

    RECEIVED = "RECEIVED"
    SUBMITTING = "SUBMITTING"  # client_id allocated and committed, broadcast may be under way
    SUBMITTED = "SUBMITTED"  # accepted by the node (CheckTx passed)
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # outcome not known (timeout, crash): reconciled from the Indexer

    @property
    def is_final(self) -> bool:
        """Whether no further transition is possible."""
        return self in _FINAL_ORDER_STATES


_FINAL_ORDER_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED}
)


class OrderSide(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


class OrderPurpose(StrEnum):
    """Why an order exists; one order per (alert, purpose)."""

    ENTRY = "ENTRY"
    CLOSE = "CLOSE"
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"
    MANUAL = "MANUAL"


class PositionSide(StrEnum):
    """Side of an open perpetual position."""

    LONG = "LONG"
    SHORT = "SHORT"


class NotificationState(StrEnum):
    """Outbox delivery state."""

    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"  # gave up after the retry budget; kept for inspection
