"""Jurisdiction self-declaration and exchange compliance states."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Declaration:
    """A versioned self-declaration. Changing the text requires a new version, which makes
    every user accept again before anything else works."""

    version: str
    text: str


DECLARATION = Declaration(
    version="2026-11-25",
    text=(
        "I confirm that:\n"
        "• I am not a resident, citizen or located in the United States or Canada, nor in any "
        "country or region where dYdX is restricted or that is subject to sanctions (including "
        "Iran, Cuba, North Korea, Syria, Myanmar, Crimea, Donetsk and Luhansk);\n"
        "• I am not a person on a sanctions list, and I do not act for one;\n"
        "• trading perpetuals is risky, I can lose all the funds in my dYdX account, and "
        "tv2dydx acts only on my own alerts and settings."
    ),
)


class ComplianceStatus(StrEnum):
    """What the dYdX Indexer's compliance screen says of an address."""

    COMPLIANT = "COMPLIANT"
    FIRST_STRIKE_CLOSE_ONLY = "FIRST_STRIKE_CLOSE_ONLY"
    FIRST_STRIKE = "FIRST_STRIKE"
    CLOSE_ONLY = "CLOSE_ONLY"
    BLOCKED = "BLOCKED"

    @property
    def may_open(self) -> bool:
        """Whether new (non reduce-only) orders are allowed."""
        return self in {ComplianceStatus.COMPLIANT, ComplianceStatus.FIRST_STRIKE}

    @property
    def may_trade(self) -> bool:
        """Whether any order is allowed (reduce-only included)."""
        return self is not ComplianceStatus.BLOCKED
