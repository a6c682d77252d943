"""The periods a trader picks for ``/pnl`` and ``/stats``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum


class Period(StrEnum):
    """A look-back window ending now (``all``: the whole history)."""

    WEEK = "7d"
    MONTH = "30d"
    QUARTER = "90d"
    YEAR = "1y"
    ALL = "all"

    @property
    def length(self) -> timedelta | None:
        """The window's length; ``None`` for the whole history."""
        return _LENGTHS[self]

    def start(self, now: datetime) -> datetime | None:
        """Where the window begins when it ends at ``now``; ``None`` for the whole history."""
        length = self.length
        return None if length is None else now - length

    @classmethod
    def parse(cls, text: str) -> Period | None:
        """``7d``, ``30D``, ``1y``, ``all`` (also ``7``, ``30``, ``90``, ``365``) → a period."""
        cleaned = text.strip().lower()
        cleaned = {"7": "7d", "30": "30d", "90": "90d", "365": "1y", "365d": "1y"}.get(
            cleaned, cleaned
        )
        try:
            return cls(cleaned)
        except ValueError:
            return None


_LENGTHS: dict[Period, timedelta | None] = {
    Period.WEEK: timedelta(days=7),
    Period.MONTH: timedelta(days=30),
    Period.QUARTER: timedelta(days=90),
    Period.YEAR: timedelta(days=365),
    Period.ALL: None,
}

_PERIOD_LIKE = re.compile(r"\d+[dwmy]?")

#: What ``/pnl`` and ``/stats`` show without an argument.
DEFAULT_PERIOD = Period.MONTH


def parse_period_and_strategy(arguments: str) -> tuple[Period, str | None]:
    """``/stats`` arguments: an optional period, then an optional strategy label.

    ``"30d trend"``, ``"trend"`` (the default period) and ``""`` are understood.

    Raises:
        ValueError: The first word looks like a period (``5d``, ``2y``) but is none.
    """
    words = arguments.split(maxsplit=1)
    if not words:
        return DEFAULT_PERIOD, None
    period = Period.parse(words[0])
    if period is not None:
        return period, (words[1].strip() if len(words) > 1 else None) or None
    if _PERIOD_LIKE.fullmatch(words[0].lower()):
        raise ValueError(words[0])
    return DEFAULT_PERIOD, arguments.strip()[:64]
