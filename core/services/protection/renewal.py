"""When a bracket's legs are renewed before the chain expires them (pure: no database, no
exchange).

A leg is a stateful order with a ``good_til_block_time``: left alone it expires, and the
position is unprotected until a step re-places it. So a leg within ``renew_before`` of its
expiry is replaced by a new generation of the same legs (new before old, like a resize), and
the trader is not told: their protection did not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from core.db.models import Order
from core.domain.states import OPEN_ORDER_STATES, OrderPurpose
from core.texts import protection as texts

#: Take-profit / stop-loss orders rest this long (``PROTECTION_LEG_LIFETIME_SECONDS``).
PROTECTION_LIFETIME = timedelta(days=28)
#: A leg this close to its expiry is renewed (``PROTECTION_RENEW_BEFORE_SECONDS``).
PROTECTION_RENEW_BEFORE = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class LegLifetime:
    """How long legs rest on the chain, and when they are renewed.

    Attributes:
        lifetime: How far ahead a leg's ``good_til_block_time`` is set when placed (the
            chain accepts at most 95 days).
        renew_before: How long before that moment the leg is renewed.
    """

    lifetime: timedelta = PROTECTION_LIFETIME
    renew_before: timedelta = PROTECTION_RENEW_BEFORE

    @classmethod
    def of_seconds(cls, lifetime: float, renew_before: float) -> LegLifetime:
        """From the settings' seconds."""
        return cls(timedelta(seconds=lifetime), timedelta(seconds=renew_before))

    def expires_at(self, now: datetime) -> datetime:
        """The ``good_til_block_time`` of a leg placed ``now``."""
        return now + self.lifetime

    def expiring(self, leg: Order, now: datetime) -> bool:
        """Whether ``leg`` is close enough to its expiry to be renewed."""
        expiry = leg.good_til_block_time
        return expiry is not None and expiry - self.renew_before <= now

    def recheck(self, interval: timedelta) -> timedelta:
        """A resting bracket's polling ``interval``, short enough that steps look at least
        twice while a leg is within its renewal margin."""
        return min(interval, self.renew_before / 2)


def renews(
    legs: Sequence[Order],
    generation: int,
    triggers: Mapping[OrderPurpose, Decimal],
    target: Decimal,
) -> bool:
    """Whether a bracket's current ``generation`` only renews the one before it.

    It does when, for every leg it holds, the newest older leg of that purpose had the same
    size and trigger and was still resting when the new one was placed (live, or cancelled
    as renewed by a step that stopped before it wrote RESTING). A leg that expired or was
    cancelled elsewhere in between is a gap the trader hears about.

    Args:
        legs: Every leg the bracket ever had.
        generation: The bracket's current generation.
        triggers: The current legs' trigger prices by purpose.
        target: The current legs' size.
    """
    older = sorted(
        (leg for leg in legs if (leg.generation or 0) < generation),
        key=lambda leg: leg.generation or 0,
    )
    previous = {leg.purpose: leg for leg in older}
    return bool(triggers) and all(
        purpose in previous
        and previous[purpose].size == target
        and previous[purpose].trigger_price == trigger
        and (
            previous[purpose].state in OPEN_ORDER_STATES
            or previous[purpose].error == texts.LEG_RENEWED
        )
        for purpose, trigger in triggers.items()
    )
