"""Which worker moves a trailing bracket: the one holding the lease on its owner's subaccount.

The chain counts stateful orders per owner address, so one process must place all of an
owner's moves for its :class:`~.trailing.StatefulOrderBudget` to be the chain's. The position
monitor already leases each watched subaccount to exactly one worker; the trailing service
follows those leases (it is handed the held subaccounts, never the monitor itself). An owner
whose brackets sit in several subaccounts is moved by the holder of the lowest-numbered of
them, so its budget still lives in one process.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from core.db.models import Bracket
from core.exchange.stream import SubaccountRef


class HeldSubaccounts(Protocol):
    """The subaccounts this process holds the lease on (the position monitor's ``held``)."""

    def __call__(self) -> Collection[SubaccountRef]:
        """Held as of now; empty while the process holds none (or cannot reach Redis)."""
        ...


def keepers(brackets: Iterable[Bracket]) -> dict[int, SubaccountRef]:
    """The subaccount whose lease decides who moves each bracket.

    Args:
        brackets: The brackets to move (every worker reads the same ones from the ledger).

    Returns:
        Per bracket id, its owner's lowest-numbered subaccount among ``brackets``.
    """
    rows = list(brackets)
    lowest: dict[str, int] = {}
    for bracket in rows:
        number = lowest.get(bracket.owner_address)
        if number is None or bracket.subaccount_number < number:
            lowest[bracket.owner_address] = bracket.subaccount_number
    return {
        bracket.id: SubaccountRef(bracket.owner_address, lowest[bracket.owner_address])
        for bracket in rows
    }
