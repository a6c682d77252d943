"""Numbers, money, times and durations as a trader reads them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")
MINUS = "−"  # a real minus sign: a hyphen reads as a dash in a sentence


def number(value: Decimal) -> str:
    """``1234.5000`` → ``1,234.5``: thousands separators, no trailing zeros."""
    text = f"{abs(value):,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{MINUS}{text}" if value < 0 else text


def size(value: Decimal) -> str:
    """A size in base units as the exchange filled it: ``1,234.5``, ``0.001`` (no trailing
    zeros, never rounded)."""
    return number(value)


def usd(value: Decimal, *, signed: bool = False, whole: bool = False) -> str:
    """Money to the cent: ``$1,234.50``; ``signed`` adds ``+`` to gains (PnL); ``whole``
    leaves out ``.00`` of a round amount (limits: ``$5,000``)."""
    cents = value.quantize(CENT, rounding=ROUND_HALF_EVEN)
    text = f"${abs(cents):,.2f}"
    if whole and cents == cents.to_integral():
        text = f"${abs(cents):,.0f}"
    if cents < 0:
        return f"{MINUS}{text}"
    return f"+{text}" if signed and cents > 0 else text


def price(value: Decimal) -> str:
    """A price at the precision it has, with at least cents: ``$3,100.25``, ``$0.08123``."""
    if value == value.quantize(CENT):
        return usd(value)
    return f"${number(value)}"


def pct(value: Decimal) -> str:
    """``0.50`` → ``0.5%``."""
    return f"{number(value)}%"


def local_time(at: datetime, zone: ZoneInfo, *, seconds: bool = True) -> str:
    """A UTC-aware time in the trader's zone: ``2026-11-25 15:04:05 CET``."""
    local = at.astimezone(zone)
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local.strftime(pattern)} {local.tzname() or zone.key}"


def clock(at: datetime, zone: ZoneInfo) -> str:
    """Time of day with milliseconds in the trader's zone: ``15:04:05.123``."""
    local = at.astimezone(zone)
    return f"{local.strftime('%H:%M:%S')}.{local.microsecond // 1000:03d}"


def duration(delta: timedelta) -> str:
    """A latency: ``0 ms``, ``85 ms``, ``1.24 s``, ``2 min 5 s``, ``3 h 12 min``."""
    negative = delta < timedelta(0)
    seconds = abs(delta).total_seconds()
    if seconds < 1:
        text = f"{round(seconds * 1000)} ms"
    elif seconds < 60:
        text = f"{seconds:.2f} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min {int(seconds % 60)} s"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    else:
        text = f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"
    return f"{MINUS}{text}" if negative else text
