"""Which subaccount's lease decides who moves a trailing bracket: one per owner address, so
each owner's stateful-order budget lives in one worker."""

from __future__ import annotations

from core.db.models import Bracket
from core.exchange.stream import SubaccountRef
from core.services.protection.keepers import keepers


def bracket(bracket_id: int, owner: str, number: int) -> Bracket:
    return Bracket(id=bracket_id, owner_address=owner, subaccount_number=number)


def test_an_owners_brackets_in_several_subaccounts_share_one_keeper() -> None:
    rows = [bracket(1, "dydx1a", 3), bracket(2, "dydx1a", 1), bracket(3, "dydx1a", 3)]
    assert keepers(rows) == dict.fromkeys((1, 2, 3), SubaccountRef("dydx1a", 1))


def test_owners_are_kept_apart() -> None:
    rows = [bracket(1, "dydx1a", 0), bracket(2, "dydx1b", 2), bracket(3, "dydx1b", 0)]
    assert keepers(rows) == {
        1: SubaccountRef("dydx1a", 0),
        2: SubaccountRef("dydx1b", 0),
        3: SubaccountRef("dydx1b", 0),
    }


def test_a_bracket_alone_is_kept_by_its_own_subaccount() -> None:
    assert keepers([bracket(7, "dydx1c", 5)]) == {7: SubaccountRef("dydx1c", 5)}
    assert keepers([]) == {}
