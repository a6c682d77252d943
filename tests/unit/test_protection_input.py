"""What a trader types for a stop-loss or take-profit in the bot."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.services.protection.manual import ProtectionInputError, StopInput, parse_stop


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2950", StopInput(price=Decimal(2950))),
        (" $2,950.5 ", StopInput(price=Decimal("2950.5"))),
        ("1.5%", StopInput(pct=Decimal("1.5"))),
        ("1.5 %", StopInput(pct=Decimal("1.5"))),
    ],
)
def test_a_price_or_a_percentage_is_read(text: str, expected: StopInput) -> None:
    assert parse_stop(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "-5", "0", "100%", "NaN", "Infinity", "1e9999%"])
def test_anything_else_is_refused_in_plain_words(text: str) -> None:
    with pytest.raises(ProtectionInputError, match="is not a price"):
        parse_stop(text)
