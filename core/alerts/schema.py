"""TradingView alert messages: the fields, their validation and normalisation (pure, no I/O).

Two shapes are accepted. The native one (documented in the README) and, unchanged, the one
of junta/tradingview-alert-connector ("TAC": ``order``, ``sizeUsd``, ``sizeByLeverage``,
``slippagePercentage``, ``reverse``...), so users of that project only change the URL.
Both normalise into one :class:`AlertOrder` with ``Decimal`` numbers. Every problem found
is reported at once, by field, so a user fixes the alert message in one go. Decoding the body
and its values is :mod:`core.alerts.decode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from core.alerts.decode import FieldError, normalise_market, parse_decimal, parse_time
from core.texts import alerts as texts

MAX_ALERT_ID_CHARS = 128
MAX_STRATEGY_CHARS = 64

# Upper bounds: anything above is a broken template, not a trade.
MAX_SIZE = Decimal("1e9")
MAX_SIZE_USD = Decimal("1e9")
MAX_SIZE_PCT = Decimal(1000)  # 10x equity: beyond that, leverage limits refuse anyway
MAX_PRICE = Decimal("1e12")
MAX_SLIPPAGE_PCT = Decimal(50)
MAX_TP_PCT = Decimal(1000)
MAX_SL_PCT = Decimal(100)
MAX_TRAIL_PCT = Decimal(100)
MAX_BE_TRIGGER_PCT = Decimal(100)


class Action(StrEnum):
    """What the alert asks for."""

    BUY = "buy"
    SELL = "sell"
    CLOSE = "close"


class TargetPosition(StrEnum):
    """The position the strategy expects after this order (``{{strategy.market_position}}``)."""

    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class OrderType(StrEnum):
    """How the order is placed."""

    MARKET = "market"
    LIMIT = "limit"


class AlertSchemaError(ValueError):
    """The alert is well-formed JSON but not a valid alert.

    Attributes:
        errors: Failing field → what is wrong with it.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True, slots=True)
class AlertOrder:
    """A validated, normalised alert. Never holds the passphrase."""

    market: str
    action: Action
    position: TargetPosition | None = None
    size: Decimal | None = None
    size_usd: Decimal | None = None
    size_pct: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    slippage_pct: Decimal | None = None
    tp_pct: Decimal | None = None
    tp_price: Decimal | None = None
    sl_pct: Decimal | None = None
    sl_price: Decimal | None = None
    trail_pct: Decimal | None = None
    be_trigger_pct: Decimal | None = None
    reverse: bool = False
    alert_id: str | None = None
    time: datetime | None = None
    strategy: str | None = None

    def to_fields(self) -> dict[str, Any]:
        """A JSON-safe form (decimals as strings, time as ISO 8601) for the ledger."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Decimal):
                out[name] = str(value)
            elif isinstance(value, datetime):
                out[name] = value.isoformat()
            elif isinstance(value, StrEnum):
                out[name] = value.value
            else:
                out[name] = value
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> AlertOrder:
        """Rebuild an alert stored with :meth:`to_fields` (used by the executor)."""
        decimals = {
            name: Decimal(fields[name])
            for name in (
                "size",
                "size_usd",
                "size_pct",
                "price",
                "slippage_pct",
                "tp_pct",
                "tp_price",
                "sl_pct",
                "sl_price",
                "trail_pct",
                "be_trigger_pct",
            )
            if fields.get(name) is not None
        }
        position = fields.get("position")
        time = fields.get("time")
        return cls(
            market=str(fields["market"]),
            action=Action(fields["action"]),
            position=TargetPosition(position) if position else None,
            order_type=OrderType(fields.get("order_type", OrderType.MARKET.value)),
            reverse=bool(fields.get("reverse", False)),
            alert_id=fields.get("alert_id"),
            time=datetime.fromisoformat(time) if time else None,
            strategy=fields.get("strategy"),
            **decimals,
        )


# Field parsers ----------------------------------------------------------------------------


def _label(value: Any, limit: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError(texts.NOT_TEXT)
    text = str(value).strip()
    if not text:
        raise FieldError(texts.EMPTY)
    if len(text) > limit:
        raise FieldError(texts.too_long(limit))
    if not text.isprintable():
        raise FieldError(texts.CONTROL_CHARACTERS)
    return text


def _choice(value: Any, enum_cls: type[StrEnum]) -> Any:
    options = ", ".join(member.value for member in enum_cls)
    if not isinstance(value, str):
        raise FieldError(texts.one_of(options))
    try:
        return enum_cls(value.strip().lower())
    except ValueError:
        raise FieldError(texts.one_of(options)) from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise FieldError(texts.NOT_BOOLEAN)


# The schema -------------------------------------------------------------------------------

# TAC field → native field.
_TAC_ALIASES = {
    "order": "action",
    "sizeUsd": "size_usd",
    "sizeByLeverage": "size_pct",
    "slippagePercentage": "slippage_pct",
}
# TAC fields without meaning here (its exchange switch, its own profit and collateral rules).
_TAC_IGNORED = frozenset(
    {"exchange", "orderMode", "minProfit", "collateral", "newPositionSize", "direction"}
)
_NATIVE = frozenset(
    {
        "passphrase",
        "market",
        "action",
        "position",
        "size",
        "size_usd",
        "size_pct",
        "order_type",
        "price",
        "slippage_pct",
        "tp_pct",
        "tp_price",
        "sl_pct",
        "sl_price",
        "trail_pct",
        "be_trigger_pct",
        "reverse",
        "alert_id",
        "time",
        "strategy",
    }
)
KNOWN_FIELDS = _NATIVE | frozenset(_TAC_ALIASES) | _TAC_IGNORED

_DECIMAL_RULES: dict[str, dict[str, Any]] = {
    "size": {"maximum": MAX_SIZE},
    "size_usd": {"maximum": MAX_SIZE_USD},
    "size_pct": {"maximum": MAX_SIZE_PCT},
    "price": {"maximum": MAX_PRICE},
    "slippage_pct": {"maximum": MAX_SLIPPAGE_PCT, "allow_zero": True},
    "tp_pct": {"maximum": MAX_TP_PCT},
    "tp_price": {"maximum": MAX_PRICE},
    "sl_pct": {"maximum": MAX_SL_PCT},
    "sl_price": {"maximum": MAX_PRICE},
    "trail_pct": {"maximum": MAX_TRAIL_PCT},
    "be_trigger_pct": {"maximum": MAX_BE_TRIGGER_PCT},
}
_SIZING = ("size", "size_usd", "size_pct")


def _native_view(
    body: Mapping[str, Any], errors: dict[str, str], parsed: dict[str, Any]
) -> dict[str, Any]:
    """Rename TAC fields to native ones; report unknown fields and native/TAC clashes."""
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key not in KNOWN_FIELDS:
            # The name is echoed back and stored: keep it short and printable.
            name = key[:64] if key[:64].isprintable() else ascii(key[:64])[1:-1]
            errors[name] = texts.UNKNOWN_FIELD
            continue
        if key in _TAC_IGNORED or key == "passphrase":
            continue
        native = _TAC_ALIASES.get(key, key)
        if native in values:
            errors[key] = texts.either_not_both(native, key)
            continue
        values[native] = value
        if key == "sizeByLeverage":
            # TAC's leverage multiple of equity is a percentage of equity here.
            del values[native]
            values["_leverage"] = True
            try:
                parsed[native] = parse_decimal(value, maximum=MAX_SIZE_PCT / 100) * 100
            except ValueError as exc:
                errors[key] = str(exc)
    return values


def parse_alert(body: Mapping[str, Any]) -> AlertOrder:
    """Validate and normalise a decoded alert body (native or TAC shape).

    The passphrase is not looked at here: it is checked before, and never kept.

    Raises:
        AlertSchemaError: Listing every failing field.
    """
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    values = _native_view(body, errors, parsed)
    if values.pop("_leverage", False) and "size_pct" in body:
        errors["sizeByLeverage"] = texts.LEVERAGE_AND_PCT

    def field(name: str, parse: Any, *args: Any, **kwargs: Any) -> None:
        if name not in values or values[name] is None or values[name] == "":
            return
        try:
            parsed[name] = parse(values[name], *args, **kwargs)
        except ValueError as exc:
            errors[name] = str(exc)

    if values.get("market") in (None, ""):
        errors["market"] = texts.REQUIRED
    else:
        field("market", normalise_market)
    if values.get("action") in (None, ""):
        errors["action"] = texts.ACTION_REQUIRED
    else:
        field("action", _choice, Action)
    field("position", _choice, TargetPosition)
    field("order_type", _choice, OrderType)
    for name, rules in _DECIMAL_RULES.items():
        field(name, parse_decimal, **rules)
    field("reverse", _boolean)
    field("alert_id", _label, MAX_ALERT_ID_CHARS)
    field("strategy", _label, MAX_STRATEGY_CHARS)
    field("time", parse_time)

    action = parsed.get("action")
    position = parsed.get("position")
    sizing = [name for name in _SIZING if name in parsed]
    if len(sizing) > 1:
        for name in sizing:
            errors[name] = texts.ONE_SIZING
    elif (
        not sizing
        and action in (Action.BUY, Action.SELL)
        and position is not TargetPosition.FLAT
        and not any(name in errors for name in _SIZING)
    ):
        errors["size"] = texts.SIZING_REQUIRED
    if action is Action.CLOSE and position in (TargetPosition.LONG, TargetPosition.SHORT):
        errors["position"] = texts.CLOSE_NOT_FLAT
    if parsed.get("order_type") is OrderType.LIMIT and "price" not in parsed:
        errors.setdefault("price", texts.LIMIT_PRICE_REQUIRED)
    for pct, absolute in (("tp_pct", "tp_price"), ("sl_pct", "sl_price")):
        if pct in parsed and absolute in parsed:
            errors[absolute] = texts.only_one_of(pct, absolute)
    if "be_trigger_pct" in parsed and not any(
        name in parsed or name in errors for name in ("sl_pct", "sl_price", "trail_pct")
    ):
        errors["be_trigger_pct"] = texts.BREAKEVEN_NEEDS_STOP
    if errors:
        raise AlertSchemaError(errors)
    return AlertOrder(**parsed)
