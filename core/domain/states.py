"""Domain vocabulary shared by every layer: states, sides and purposes.

The alert, order and bracket state machines are defined here, once:
:data:`ALERT_TRANSITIONS`, :data:`ORDER_TRANSITIONS` and :data:`BRACKET_TRANSITIONS` list
every allowed move. The repositories' transition functions and the hot path's SQL derive
their allowed-from states from these tables (:func:`sources_of`), so a state can only ever
move forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar


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


class BracketState(StrEnum):
    """Lifecycle of an entry's requested protection (its take-profit / stop-loss legs)."""

    REQUESTED = "REQUESTED"  # committed with its entry; nothing filled yet to protect
    PLACING = "PLACING"  # a generation of legs is being committed and broadcast
    RESTING = "RESTING"  # the node accepted every leg of the current generation
    LEG_FILLED = "LEG_FILLED"  # a leg filled; its sibling is being cancelled
    CLOSED = "CLOSED"  # nothing left to protect: every leg is gone
    FAILED = "FAILED"  # the chain refused a leg: the trader was told what to do

    @property
    def is_final(self) -> bool:
        """Whether no further transition is possible."""
        return self in (BracketState.CLOSED, BracketState.FAILED)


class OrderSide(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


class OrderPurpose(StrEnum):
    """Why an order exists: one entry / close per alert; legs are one per (bracket, purpose,
    generation)."""

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


_FINAL_ALERT_STATES = frozenset(
    {
        AlertState.REJECTED,
        AlertState.EXECUTED,
        AlertState.SKIPPED,
        AlertState.EXPIRED,
        AlertState.FAILED,
    }
)

#: Every allowed move of an alert. An alert is born ACCEPTED (or REJECTED, final at once);
#: a worker picks it up (PROCESSING) or it is finished straight away (skipped, expired...).
ALERT_TRANSITIONS: Mapping[AlertState, frozenset[AlertState]] = MappingProxyType(
    {
        AlertState.ACCEPTED: frozenset({AlertState.PROCESSING} | _FINAL_ALERT_STATES)
        - {AlertState.REJECTED},
        AlertState.PROCESSING: _FINAL_ALERT_STATES - {AlertState.REJECTED},
        **{state: frozenset[AlertState]() for state in _FINAL_ALERT_STATES},
    }
)

#: Every allowed move of an order. An open order may end in any final state; on the way it
#: only moves forward: SUBMITTING → UNKNOWN → SUBMITTED → PARTIALLY_FILLED.
ORDER_TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = MappingProxyType(
    {
        OrderState.RECEIVED: frozenset({OrderState.SUBMITTING}) | _FINAL_ORDER_STATES,
        OrderState.SUBMITTING: frozenset(
            {OrderState.UNKNOWN, OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED}
        )
        | _FINAL_ORDER_STATES,
        OrderState.UNKNOWN: frozenset({OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED})
        | _FINAL_ORDER_STATES,
        OrderState.SUBMITTED: frozenset({OrderState.PARTIALLY_FILLED}) | _FINAL_ORDER_STATES,
        OrderState.PARTIALLY_FILLED: _FINAL_ORDER_STATES,
        **{state: frozenset[OrderState]() for state in _FINAL_ORDER_STATES},
    }
)

_FINAL_BRACKET_STATES = frozenset({BracketState.CLOSED, BracketState.FAILED})

#: Every allowed move of a bracket. Legs are placed (again, for a resize) from PLACING; a
#: resting bracket goes back to PLACING when its legs must change size; a filled leg, a
#: closed position or a refusal ends it.
BRACKET_TRANSITIONS: Mapping[BracketState, frozenset[BracketState]] = MappingProxyType(
    {
        BracketState.REQUESTED: frozenset({BracketState.PLACING}) | _FINAL_BRACKET_STATES,
        BracketState.PLACING: frozenset({BracketState.RESTING, BracketState.LEG_FILLED})
        | _FINAL_BRACKET_STATES,
        BracketState.RESTING: frozenset({BracketState.PLACING, BracketState.LEG_FILLED})
        | _FINAL_BRACKET_STATES,
        BracketState.LEG_FILLED: frozenset({BracketState.CLOSED}),
        **{state: frozenset[BracketState]() for state in _FINAL_BRACKET_STATES},
    }
)

#: The state a new alert is written in when accepted, and when refused at intake.
ALERT_INITIAL_STATES = frozenset({AlertState.ACCEPTED, AlertState.REJECTED})
#: The state a new order is committed in (before anything leaves the process).
ORDER_INITIAL_STATE = OrderState.SUBMITTING
#: The state a bracket is committed in, with its entry.
BRACKET_INITIAL_STATE = BracketState.REQUESTED

_State = TypeVar("_State", AlertState, OrderState, BracketState)
_AnyState = AlertState | OrderState | BracketState


class IllegalTransitionError(ValueError):
    """A state change the state machine does not allow.

    Attributes:
        current: The state the alert or order is in.
        target: The state asked for.
    """

    def __init__(self, current: _AnyState, target: _AnyState) -> None:
        kind = type(target).__name__
        super().__init__(f"{kind} cannot move from {current.value} to {target.value}")
        self.current = current
        self.target = target


def _table(state: _State) -> Mapping[_State, frozenset[_State]]:
    table: Any = ALERT_TRANSITIONS
    if isinstance(state, OrderState):
        table = ORDER_TRANSITIONS
    elif isinstance(state, BracketState):
        table = BRACKET_TRANSITIONS
    found: Mapping[_State, frozenset[_State]] = table
    return found


def can_transition(current: _State, target: _State) -> bool:
    """Whether the state machine allows ``current`` → ``target`` (never a self-move)."""
    return target in _table(current)[current]


def check_transition(current: _State, target: _State) -> None:
    """Refuse a move the state machine does not allow.

    Raises:
        IllegalTransitionError: ``current`` → ``target`` is not in the table.
    """
    if not can_transition(current, target):
        raise IllegalTransitionError(current, target)


def sources_of(target: _State) -> frozenset[_State]:
    """Every state from which ``target`` may be reached (empty for an initial state)."""
    table = _table(target)
    return frozenset(state for state, targets in table.items() if target in targets)


def open_states(states: Iterable[_State]) -> frozenset[_State]:
    """The states among ``states`` that are not final (some move is still allowed)."""
    return frozenset(state for state in states if _table(state)[state])


#: Orders whose outcome may still change.
OPEN_ORDER_STATES: frozenset[OrderState] = open_states(OrderState)
#: Alerts no run has finished yet.
OPEN_ALERT_STATES: frozenset[AlertState] = open_states(AlertState)
#: Open orders nothing has filled yet: those that may still take a first fill.
UNFILLED_ORDER_STATES: frozenset[OrderState] = sources_of(OrderState.PARTIALLY_FILLED)
#: Brackets that may still need work.
OPEN_BRACKET_STATES: frozenset[BracketState] = open_states(BracketState)
