"""The bracket state machine and the LIFO shrink of brackets over one position (pure)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from core.domain.states import (
    BRACKET_INITIAL_STATE,
    BRACKET_TRANSITIONS,
    OPEN_BRACKET_STATES,
    BracketState,
    IllegalTransitionError,
    can_transition,
    check_transition,
    sources_of,
)
from core.services.protection.coverage import Share, shrink_lifo

BS = BracketState
D = Decimal

BRACKET_MOVES = {
    (BS.REQUESTED, BS.PLACING),
    (BS.REQUESTED, BS.CLOSED),
    (BS.REQUESTED, BS.FAILED),
    (BS.PLACING, BS.RESTING),
    (BS.PLACING, BS.LEG_FILLED),
    (BS.PLACING, BS.CLOSED),
    (BS.PLACING, BS.FAILED),
    (BS.RESTING, BS.PLACING),  # a resize places a new generation
    (BS.RESTING, BS.LEG_FILLED),
    (BS.RESTING, BS.CLOSED),
    (BS.RESTING, BS.FAILED),
    (BS.LEG_FILLED, BS.CLOSED),
}


def test_the_bracket_table_is_exactly_the_documented_moves() -> None:
    allowed = {(a, b) for a, targets in BRACKET_TRANSITIONS.items() for b in targets}
    assert allowed == BRACKET_MOVES
    assert BRACKET_INITIAL_STATE is BS.REQUESTED
    assert frozenset({BS.CLOSED, BS.FAILED}) == frozenset(BS) - OPEN_BRACKET_STATES
    assert all(state.is_final is (state not in OPEN_BRACKET_STATES) for state in BS)
    assert sources_of(BS.LEG_FILLED) == {BS.PLACING, BS.RESTING}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(BS, BS)))
def test_every_other_bracket_move_is_refused(current: BS, target: BS) -> None:
    if (current, target) in BRACKET_MOVES:
        assert can_transition(current, target)
        check_transition(current, target)
    else:
        assert not can_transition(current, target)
        with pytest.raises(IllegalTransitionError):
            check_transition(current, target)


def _share(bracket_id: int, filled: str, legs: str = "0", reduced: str = "0") -> Share:
    return Share(bracket_id, D(filled), D(legs), D(reduced))


def test_a_share_covers_its_fill_less_its_legs_and_reductions() -> None:
    assert _share(1, "0.3", legs="0.1", reduced="0.05").target == D("0.15")
    assert _share(1, "0.1", legs="0.2").target == D(0)


def test_a_smaller_position_shrinks_the_newest_brackets_first() -> None:
    shares = [_share(1, "0.1"), _share(2, "0.2"), _share(3, "0.1")]
    assert shrink_lifo(shares, D("0.4")) == {}
    assert shrink_lifo(shares, D("0.35")) == {3: D("0.05")}
    assert shrink_lifo(shares, D("0.15")) == {3: D("0.1"), 2: D("0.15")}
    assert shrink_lifo(shares, D(0)) == {3: D("0.1"), 2: D("0.2"), 1: D("0.1")}
    # A position larger than the brackets (an entry without protection) shrinks nothing.
    assert shrink_lifo(shares, D(1)) == {}
