"""How much each bracket of one position must cover (pure: no database, no exchange).

Each bracket covers what its entry filled, less what its own legs filled and what a reduce
from elsewhere took away. When the position is smaller than the brackets cover, the newest
brackets give up size first (LIFO), so the oldest entries keep the protection they asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Share:
    """One bracket's claim on the position.

    Attributes:
        bracket_id: The bracket.
        entry_filled: What its entry filled.
        legs_filled: What its legs filled (reduced the position through this bracket).
        reduced: What reduces from elsewhere already took from it.
    """

    bracket_id: int
    entry_filled: Decimal
    legs_filled: Decimal
    reduced: Decimal

    @property
    def target(self) -> Decimal:
        """What the bracket's legs must cover now."""
        return max(self.entry_filled - self.legs_filled - self.reduced, Decimal(0))


def shrink_lifo(shares: list[Share], position: Decimal) -> dict[int, Decimal]:
    """How much more each bracket gives up so the targets sum to at most ``position``.

    Args:
        shares: The brackets on the position's side, oldest first.
        position: The position's size (absolute).

    Returns:
        bracket id → size to take away (only brackets that give something up).
    """
    excess = sum((share.target for share in shares), Decimal(0)) - max(position, Decimal(0))
    cuts: dict[int, Decimal] = {}
    for share in reversed(shares):
        if excess <= 0:
            break
        cut = min(excess, share.target)
        if cut > 0:
            cuts[share.bracket_id] = cut
            excess -= cut
    return cuts
