"""Preference values as text (a preset button's value or what the trader typed), parsed.

A button and a typed value go through the same validation, and a bad value raises before
anything is changed. Pure: no I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import available_timezones

from core.alerts.decode import normalise_market
from core.domain.preferences import (
    MAX_LEVERAGE,
    MAX_NOTIONAL_USD,
    MAX_OPEN_POSITIONS,
    MAX_SLIPPAGE_PCT,
    FlipMode,
    PreferenceField,
    SizeKind,
)
from core.texts import settings as texts
from core.texts.settings import UNIT_EQUITY_PCT, UNIT_LEVERAGE, UNIT_PCT, UNIT_USD

MAX_SIZE_PCT = Decimal(1000)  # 10x equity, as an alert's size_pct; leverage caps bind first
MAX_ALLOWED_MARKETS = 40
MAX_INPUT_CHARS = 400
MAX_DECIMALS = 8

_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$|^\.\d+$")
_UTC_OFFSET_RE = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})$")
_SIZE_RE = re.compile(r"^(\$)?\s*(\d[\d.,_]*k?|\.\d+)\s*(%|\$|[a-z]{0,12})$")
_BARE_BASE_RE = re.compile(r"^[A-Za-z0-9]{1,20}$")
_OFF_WORDS = frozenset({"off", "none", "no", "no limit", "unlimited", "-"})


class PreferenceInputError(ValueError):
    """A preference value was refused; ``str(exc)`` says what is accepted."""


def _decimal(text: str, field: PreferenceField) -> Decimal:
    """A plain positive-looking number, with ``,`` thousands separators and a ``k`` suffix."""
    cleaned = text.strip().lower().replace(",", "").replace("_", "").replace(" ", "")
    factor = Decimal(1)
    if cleaned.endswith("k"):
        cleaned, factor = cleaned[:-1], Decimal(1000)
    if not _NUMBER_RE.match(cleaned):
        raise PreferenceInputError(texts.input_not_a_number(field))
    if len(cleaned.partition(".")[2]) > MAX_DECIMALS:
        raise PreferenceInputError(texts.input_too_precise(field, MAX_DECIMALS))
    try:
        value = Decimal(cleaned) * factor
        # 2.5k is 2500, not 2500.0 (normalize() alone would store 1E+3)
        return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()
    except InvalidOperation:  # more digits than Decimal's context holds
        raise PreferenceInputError(texts.input_too_large(field)) from None


def _bounded(value: Decimal, field: PreferenceField, maximum: Decimal, unit: str = "") -> Decimal:
    if value <= 0 or value > maximum:
        raise PreferenceInputError(texts.input_out_of_bounds(field, maximum, unit))
    return value


def _strip(text: str, *suffixes: str) -> str:
    cleaned = text.strip().lower()
    for suffix in suffixes:
        if cleaned.endswith(suffix):
            return cleaned[: -len(suffix)].strip()
    return cleaned


def _size(text: str) -> dict[str, Any]:
    what = PreferenceField.SIZE
    match = _SIZE_RE.match(text.strip().lower())
    if match is None:
        raise PreferenceInputError(texts.input_unrecognised(what))
    dollar, amount, unit = match.groups()
    if unit == "%" and not dollar:
        pct = _bounded(_decimal(amount, what), what, MAX_SIZE_PCT, UNIT_EQUITY_PCT)
        return {"default_size_kind": SizeKind.PCT, "default_size_value": pct}
    if dollar or unit in {"", "$", "usd", "usdc"}:
        usd = _bounded(_decimal(amount, what), what, MAX_NOTIONAL_USD, UNIT_USD)
        return {"default_size_kind": SizeKind.USD, "default_size_value": usd}
    # "0.01 eth", "0.01 units": base units of whatever market the alert trades
    base = _bounded(_decimal(amount, what), what, MAX_NOTIONAL_USD)
    return {"default_size_kind": SizeKind.BASE, "default_size_value": base}


def parse_market(text: str) -> str:
    """A market as a trader types it (``btc``, ``ETHUSDT``, ``sol-usd``) as a dYdX ticker.

    Raises:
        ValueError: It is not a USD-quoted market symbol.
    """
    ticker = text.strip()
    if _BARE_BASE_RE.match(ticker) and not ticker.upper().endswith(("USD", "USDT", "USDC")):
        ticker = f"{ticker}-USD"  # "btc" means BTC-USD, dYdX's only quote
    return normalise_market(ticker)


def _markets(text: str) -> dict[str, Any]:
    cleaned = text.strip()
    if cleaned.lower() in {"all", "any", "*", "every", "all markets"}:
        return {"allowed_markets": ()}
    tickers = [part for part in re.split(r"[\s,;]+", cleaned) if part]
    if not tickers:
        raise PreferenceInputError(texts.MARKETS_EMPTY)
    if len(tickers) > MAX_ALLOWED_MARKETS:
        raise PreferenceInputError(texts.markets_too_many(MAX_ALLOWED_MARKETS))
    markets = []
    for ticker in tickers:
        try:
            markets.append(parse_market(ticker))
        except ValueError:
            shown = ticker[:32]
            raise PreferenceInputError(texts.market_unknown(shown)) from None
    return {"allowed_markets": tuple(markets)}


def _timezone(text: str) -> dict[str, Any]:
    cleaned = text.strip().replace(" ", "_")
    offset = _UTC_OFFSET_RE.match(cleaned.upper().replace("_", ""))
    if cleaned.upper() in {"UTC", "GMT", "Z"}:
        return {"timezone": "UTC"}
    if offset is not None:
        sign, hours = offset.groups()
        if int(hours) > 14:
            raise PreferenceInputError(texts.TIMEZONE_OFFSET_RANGE)
        # The IANA Etc/GMT zones have POSIX signs: UTC+2 is Etc/GMT-2.
        posix = "-" if sign == "+" else "+"
        return {"timezone": "UTC" if int(hours) == 0 else f"Etc/GMT{posix}{int(hours)}"}
    by_lower = {zone.lower(): zone for zone in available_timezones()}
    zone = by_lower.get(cleaned.lower())
    if zone is None:
        raise PreferenceInputError(texts.TIMEZONE_UNKNOWN)
    return {"timezone": zone}


def parse_preference(field: PreferenceField, text: str) -> dict[str, Any]:
    """The preference changes ``text`` asks for.

    Args:
        field: The preference being edited.
        text: A preset's value or what the trader typed.

    Raises:
        PreferenceInputError: The text is not a valid value (the message says what is).
    """
    if len(text) > MAX_INPUT_CHARS:
        raise PreferenceInputError(texts.INPUT_TOO_LONG)
    lowered = text.strip().lower()
    if field is PreferenceField.SIZE:
        return _size(text)
    if field is PreferenceField.SLIPPAGE:
        value = _decimal(_strip(text, "%"), field)
        return {"slippage_pct": _bounded(value, field, MAX_SLIPPAGE_PCT, UNIT_PCT)}
    if field is PreferenceField.LEVERAGE:
        value = _decimal(_strip(text, "x"), field)
        return {"max_leverage": _bounded(value, field, MAX_LEVERAGE, UNIT_LEVERAGE)}
    if field is PreferenceField.NOTIONAL:
        value = _decimal(_strip(text, "usdc", "usd", "$").lstrip("$"), field)
        return {"max_notional_usd": _bounded(value, field, MAX_NOTIONAL_USD, UNIT_USD)}
    if field is PreferenceField.POSITIONS:
        if not lowered.isdigit() or not 1 <= int(lowered) <= MAX_OPEN_POSITIONS:
            raise PreferenceInputError(texts.positions_refused(MAX_OPEN_POSITIONS))
        return {"max_open_positions": int(lowered)}
    if field is PreferenceField.LOSS_LIMIT:
        if lowered in _OFF_WORDS:
            return {"daily_loss_limit_usd": None}
        value = _decimal(_strip(text, "usdc", "usd", "$").lstrip("$"), field)
        limit = _bounded(value, field, MAX_NOTIONAL_USD, UNIT_USD)
        return {"daily_loss_limit_usd": limit}
    if field is PreferenceField.MARKETS:
        return _markets(text)
    if field is PreferenceField.FLIP:
        try:
            return {"flip": FlipMode(lowered)}
        except ValueError:
            raise PreferenceInputError(texts.FLIP_REFUSED) from None
    if field is PreferenceField.PAPER:
        if lowered in {"on", "paper", "true", "yes"}:
            return {"paper": True}
        if lowered in {"off", "live", "false", "no"}:
            return {"paper": False}
        raise PreferenceInputError(texts.PAPER_REFUSED)
    if field is PreferenceField.DIGEST:
        return _digest(lowered)
    return _timezone(text)


def _digest(lowered: str) -> dict[str, Any]:
    """``off``, or a local hour: ``8``, ``08``, ``8:00``, ``08:00``, ``18h``."""
    if lowered in _OFF_WORDS:
        return {"digest_hour": None}
    hour, _, minutes = lowered.removesuffix("h").partition(":")
    if hour.isdigit() and int(hour) <= 23 and minutes in ("", "0", "00"):
        return {"digest_hour": int(hour)}
    raise PreferenceInputError(texts.DIGEST_REFUSED)
