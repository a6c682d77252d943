"""When legs are renewed before the chain expires them, and when a new generation only renews
the one before it (pure: the decision of ``core.services.protection.renewal``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.db.models import Order
from core.domain.states import OrderPurpose, OrderState
from core.services.protection.renewal import LegLifetime, renews
from core.texts import protection as texts

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SL, TP = OrderPurpose.STOP_LOSS, OrderPurpose.TAKE_PROFIT
D = Decimal
LIFETIME = LegLifetime(lifetime=timedelta(days=28), renew_before=timedelta(days=3))


def leg(
    purpose: OrderPurpose,
    generation: int,
    *,
    size: str = "0.1",
    trigger: str = "2970",
    state: OrderState = OrderState.SUBMITTED,
    error: str | None = None,
    expires: datetime | None = None,
) -> Order:
    return Order(
        purpose=purpose,
        generation=generation,
        size=D(size),
        trigger_price=D(trigger),
        state=state,
        error=error,
        good_til_block_time=expires,
    )


@pytest.mark.parametrize(
    ("left", "renew"),
    [
        (timedelta(days=28), False),  # just placed
        (timedelta(days=3, seconds=1), False),  # one second before the margin
        (timedelta(days=3), True),  # the margin starts
        (timedelta(hours=1), True),
        (timedelta(seconds=-1), True),  # expired already (a step that came too late)
    ],
)
def test_a_leg_is_renewed_once_within_the_margin_of_its_expiry(
    left: timedelta, renew: bool
) -> None:
    assert LIFETIME.expiring(leg(SL, 1, expires=NOW + left), NOW) is renew


def test_a_leg_without_an_expiry_is_never_renewed() -> None:
    assert not LIFETIME.expiring(leg(SL, 1, expires=None), NOW)


def test_legs_are_placed_for_the_lifetime_and_resting_brackets_looked_at_within_the_margin() -> (
    None
):
    assert LIFETIME.expires_at(NOW) == NOW + timedelta(days=28)
    # Days of margin: the ordinary polling pace is short enough.
    assert LIFETIME.recheck(timedelta(seconds=5)) == timedelta(seconds=5)
    # A short margin: looked at at least twice within it.
    short = LegLifetime.of_seconds(30, 6)
    assert short.recheck(timedelta(seconds=5)) == timedelta(seconds=3)


def test_the_same_legs_still_resting_are_a_renewal() -> None:
    legs = [leg(SL, 1), leg(TP, 1, trigger="3060"), leg(SL, 2), leg(TP, 2, trigger="3060")]
    assert renews(legs, 2, {SL: D(2970), TP: D(3060)}, D("0.1"))


def test_old_legs_a_step_already_cancelled_as_renewed_are_still_a_renewal() -> None:
    legs = [leg(SL, 1, state=OrderState.CANCELED, error=texts.LEG_RENEWED), leg(SL, 2)]
    assert renews(legs, 2, {SL: D(2970)}, D("0.1"))


@pytest.mark.parametrize(
    ("older", "why"),
    [
        ([], "the first placement"),
        ([leg(SL, 1, size="0.2")], "a resize"),
        ([leg(SL, 1, trigger="2950")], "a moved stop"),
        (
            [leg(SL, 1, state=OrderState.CANCELED, error="expired")],
            "re-placed after the old leg expired: a gap the trader hears about",
        ),
        (
            [leg(SL, 1, state=OrderState.CANCELED, error="cancelled in the web app")],
            "re-placed after a cancel elsewhere",
        ),
        ([leg(TP, 1, trigger="3060")], "a stop-loss added where only a take-profit was"),
    ],
)
def test_anything_else_is_a_change_of_protection(older: list[Order], why: str) -> None:
    assert not renews([*older, leg(SL, 2)], 2, {SL: D(2970)}, D("0.1")), why


def test_a_trailing_brackets_older_take_profit_counts_as_the_previous_one() -> None:
    # Generation 2 was a trailing move (stop-loss only); generation 3 renews both legs.
    legs = [
        leg(SL, 1, trigger="2950", state=OrderState.CANCELED, error=texts.LEG_STOP_MOVED),
        leg(TP, 1, trigger="3060"),
        leg(SL, 2),
        leg(SL, 3),
        leg(TP, 3, trigger="3060"),
    ]
    assert renews(legs, 3, {SL: D(2970), TP: D(3060)}, D("0.1"))
