"""Decoding a TradingView alert's body and its values: JSON, numbers, market names, times.

Pure, no I/O. Each value parser raises :class:`FieldError` (a ``ValueError``) whose message
says what is wrong with the one field, so the schema can report every field at once.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from core.texts import alerts as texts

# TradingView cancels after 3 s and its messages are a few hundred bytes.
MAX_BODY_BYTES = 4096

MAX_DECIMAL_PLACES = 18  # the ledger's Numeric(38, 18)
MAX_NUMBER_CHARS = 40

_EPOCH_MS_THRESHOLD = 10**11  # larger epoch numbers are milliseconds
_MIN_YEAR = 2000
_MAX_YEAR = 2100

_NUMBER_RE = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")
_BASE_RE = re.compile(r"^[A-Z0-9]{1,20}$")
_PAIR_RE = re.compile(r"^([A-Z0-9]+)[-_/]([A-Z]+)$")
_JOINED_RE = re.compile(r"^([A-Z0-9]+?)(USDT|USDC|USD)$")
_QUOTES = frozenset({"USD", "USDT", "USDC", "PERP"})
_PERP_SUFFIXES = (".PERP", ".P")


class BodyError(ValueError):
    """The body is not a JSON object. ``str(exc)`` is a short reason for the sender."""


class FieldError(ValueError):
    """One field failed; the message says which and why."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def decode_body(raw: bytes) -> dict[str, Any]:
    """Parse a body as a JSON object, whatever its Content-Type said.

    Floats become ``Decimal`` (no binary rounding of sizes and prices); ``NaN`` and
    ``Infinity`` literals are refused.

    Raises:
        BodyError: Not UTF-8, not JSON, too deeply nested, or not an object.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(texts.BODY_NOT_UTF8) from None
    if not text.strip():
        raise BodyError(texts.BODY_EMPTY)
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise BodyError(texts.BODY_NOT_JSON) from None
    if not isinstance(value, dict):
        raise BodyError(texts.BODY_NOT_OBJECT)
    return value


# Values -----------------------------------------------------------------------------------


def parse_decimal(
    value: Any, *, maximum: Decimal, allow_zero: bool = False, minimum: Decimal | None = None
) -> Decimal:
    """A number given as a JSON number or a string, as a finite, bounded ``Decimal``.

    Args:
        value: The raw JSON value.
        maximum: Largest accepted value (inclusive).
        allow_zero: Whether zero is accepted.
        minimum: Smallest accepted value (inclusive) when above zero matters.

    Raises:
        ValueError: With a short description of the problem.
    """
    if isinstance(value, bool):
        raise FieldError(texts.NOT_A_NUMBER)
    if isinstance(value, int):
        if abs(value) > 10**15:
            raise FieldError(texts.at_most(maximum))
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, float):  # decode_body gives Decimal; other callers may not
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_CHARS or not _NUMBER_RE.match(text):
            raise FieldError(texts.NOT_A_NUMBER)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise FieldError(texts.NOT_A_NUMBER) from None
    else:
        raise FieldError(texts.NOT_A_NUMBER)
    if not number.is_finite():
        raise FieldError(texts.NOT_FINITE)
    if number < 0:
        raise FieldError(texts.NEGATIVE)
    if number == 0 and not allow_zero:
        raise FieldError(texts.NOT_POSITIVE)
    if minimum is not None and number < minimum:
        raise FieldError(texts.at_least(minimum))
    if number > maximum:
        raise FieldError(texts.at_most(maximum))
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise FieldError(texts.too_many_decimals(MAX_DECIMAL_PLACES))
    return number


def normalise_market(raw: Any) -> str:
    """A TradingView or exchange symbol as a dYdX perpetual market (``BTC-USD``).

    Accepts ``BTC-USD``, ``BTCUSD``, ``BTCUSDT``, ``BTC_USD``, ``BTC/USDT``, ``BTC-PERP``
    and ``BINANCE:BTCUSDT.P``. Whether dYdX lists the market is checked when the alert
    executes, against the live market list.

    Raises:
        ValueError: The symbol has no recognisable USD-quoted base.
    """
    if not isinstance(raw, str):
        raise FieldError(texts.NOT_A_SYMBOL)
    text = raw.strip().upper()
    if ":" in text:  # exchange prefix of TradingView's {{exchange}}:{{ticker}}
        text = text.rsplit(":", 1)[1]
    for suffix in _PERP_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    pair = _PAIR_RE.match(text)
    if pair is not None:
        base, quote = pair.groups()
        if quote not in _QUOTES:
            raise FieldError(texts.NOT_USD_QUOTED)
    else:
        joined = _JOINED_RE.match(text)
        if joined is None:
            raise FieldError(texts.NOT_A_SYMBOL)
        base = joined.group(1)
    if not _BASE_RE.match(base):
        raise FieldError(texts.NOT_A_SYMBOL)
    return f"{base}-USD"


def parse_time(value: Any) -> datetime:
    """``{{timenow}}`` (ISO 8601, ``Z`` or an offset; naive means UTC) or epoch s/ms.

    Raises:
        ValueError: Not a time, or outside the years 2000-2100.
    """
    if isinstance(value, bool):
        raise FieldError(texts.NOT_A_TIME)
    if isinstance(value, int | Decimal):
        seconds = Decimal(value)
        if not seconds.is_finite() or seconds < 0:
            raise FieldError(texts.NOT_A_TIME)
        if seconds > _EPOCH_MS_THRESHOLD:
            seconds /= 1000
        if seconds > Decimal(4_102_444_800):  # 2100-01-01
            raise FieldError(texts.TIME_OUT_OF_RANGE)
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(seconds))
    elif isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FieldError(texts.NOT_A_TIME) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    else:
        raise FieldError(texts.NOT_A_TIME)
    if not _MIN_YEAR <= moment.year < _MAX_YEAR:
        raise FieldError(texts.TIME_OUT_OF_RANGE)
    return moment
