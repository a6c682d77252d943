"""The alert and order state machines: forward moves allowed, backward refused, finals final."""

from __future__ import annotations

import itertools

import pytest

from core.db.sql import sql_literals
from core.domain.states import (
    ALERT_INITIAL_STATES,
    ALERT_TRANSITIONS,
    OPEN_ALERT_STATES,
    OPEN_ORDER_STATES,
    ORDER_INITIAL_STATE,
    ORDER_TRANSITIONS,
    UNFILLED_ORDER_STATES,
    AlertState,
    IllegalTransitionError,
    OrderState,
    can_transition,
    check_transition,
    sources_of,
)

OS = OrderState
AS = AlertState

#: The order's way forward before its outcome, in the protocol's order.
ORDER_PATH = (OS.RECEIVED, OS.SUBMITTING, OS.UNKNOWN, OS.SUBMITTED, OS.PARTIALLY_FILLED)
ORDER_FINALS = frozenset({OS.FILLED, OS.CANCELED, OS.REJECTED, OS.EXPIRED})
#: Forward moves along the path (RECEIVED only ever goes through SUBMITTING: an order is
#: committed before anything leaves the process).
ORDER_FORWARD = {
    (OS.RECEIVED, OS.SUBMITTING),
    (OS.SUBMITTING, OS.UNKNOWN),
    (OS.SUBMITTING, OS.SUBMITTED),
    (OS.SUBMITTING, OS.PARTIALLY_FILLED),
    (OS.UNKNOWN, OS.SUBMITTED),
    (OS.UNKNOWN, OS.PARTIALLY_FILLED),
    (OS.SUBMITTED, OS.PARTIALLY_FILLED),
} | {(state, final) for state in ORDER_PATH for final in ORDER_FINALS}

ALERT_FINALS = frozenset({AS.REJECTED, AS.EXECUTED, AS.SKIPPED, AS.EXPIRED, AS.FAILED})
ALERT_FORWARD = {(AS.ACCEPTED, AS.PROCESSING)} | {
    (state, final)
    for state in (AS.ACCEPTED, AS.PROCESSING)
    for final in ALERT_FINALS - {AS.REJECTED}
}


def _rank(state: OrderState) -> int:
    return len(ORDER_PATH) if state in ORDER_FINALS else ORDER_PATH.index(state)


def test_the_tables_name_every_state() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderState)
    assert set(ALERT_TRANSITIONS) == set(AlertState)


@pytest.mark.parametrize(("current", "target"), sorted(ORDER_FORWARD))
def test_every_forward_order_move_is_allowed(current: OrderState, target: OrderState) -> None:
    assert can_transition(current, target)
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), sorted(ALERT_FORWARD))
def test_every_forward_alert_move_is_allowed(current: AlertState, target: AlertState) -> None:
    assert can_transition(current, target)
    check_transition(current, target)


def test_nothing_but_the_forward_moves_is_allowed() -> None:
    orders = {(a, b) for a, targets in ORDER_TRANSITIONS.items() for b in targets}
    alerts = {(a, b) for a, targets in ALERT_TRANSITIONS.items() for b in targets}
    assert orders == ORDER_FORWARD
    assert alerts == ALERT_FORWARD


def test_orders_never_move_backwards_or_stay() -> None:
    for current, target in itertools.product(OrderState, repeat=2):
        if _rank(target) <= _rank(current):
            assert not can_transition(current, target), (current, target)
            with pytest.raises(IllegalTransitionError) as raised:
                check_transition(current, target)
            assert (raised.value.current, raised.value.target) == (current, target)


def test_alerts_never_move_backwards_or_stay() -> None:
    for state in AlertState:
        assert not can_transition(state, state)
    assert not can_transition(AS.PROCESSING, AS.ACCEPTED)
    with pytest.raises(IllegalTransitionError, match="AlertState cannot move from FAILED"):
        check_transition(AS.FAILED, AS.EXECUTED)


def test_final_states_are_final() -> None:
    for state in ORDER_FINALS:
        assert state.is_final
        assert ORDER_TRANSITIONS[state] == frozenset()
        assert all(not can_transition(state, target) for target in OrderState)
    for state in ALERT_FINALS:
        assert ALERT_TRANSITIONS[state] == frozenset()
    assert {state for state in OrderState if state.is_final} == ORDER_FINALS


def test_initial_states_are_entered_by_no_move() -> None:
    assert ORDER_INITIAL_STATE is OS.SUBMITTING
    assert {AS.ACCEPTED, AS.REJECTED} == ALERT_INITIAL_STATES
    assert sources_of(AS.ACCEPTED) == frozenset()
    assert sources_of(AS.REJECTED) == frozenset()  # refused at intake, never later
    assert sources_of(OS.RECEIVED) == frozenset()


def test_derived_sets_are_the_ones_the_sql_used_to_spell_out() -> None:
    assert sources_of(OS.SUBMITTED) == {OS.SUBMITTING, OS.UNKNOWN}
    assert sources_of(OS.UNKNOWN) == {OS.SUBMITTING}
    assert sources_of(OS.PARTIALLY_FILLED) == {OS.SUBMITTING, OS.UNKNOWN, OS.SUBMITTED}
    assert sources_of(OS.REJECTED) == OPEN_ORDER_STATES
    assert {OS.SUBMITTING, OS.UNKNOWN, OS.SUBMITTED} == UNFILLED_ORDER_STATES
    assert set(ORDER_PATH) == OPEN_ORDER_STATES
    assert sources_of(AS.PROCESSING) == {AS.ACCEPTED}
    assert {AS.ACCEPTED, AS.PROCESSING} == OPEN_ALERT_STATES
    assert sources_of(AS.FAILED) == OPEN_ALERT_STATES


def test_sql_literals_are_sorted_constants() -> None:
    assert sql_literals(sources_of(OS.SUBMITTED)) == "'SUBMITTING', 'UNKNOWN'"
    assert sql_literals([AS.PROCESSING, AS.ACCEPTED]) == "'ACCEPTED', 'PROCESSING'"
