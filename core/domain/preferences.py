"""A trader's trading preferences (``/settings``), stored as JSON on the user row.

Every field has a safe default, and every value is bounded: a preference can make trading
more careful than the defaults, never unbounded. Unknown keys in stored JSON are ignored, so
an older row still loads after a field is added or removed.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: Hard caps that no preference can exceed.
MAX_SLIPPAGE_PCT = Decimal("5")
MAX_LEVERAGE = Decimal("20")
MAX_NOTIONAL_USD = Decimal("1000000")
MAX_OPEN_POSITIONS = 50


class SizeKind(StrEnum):
    """How an alert without a size is sized."""

    USD = "usd"  # notional in USD
    PCT = "pct"  # percent of equity (notional)
    BASE = "base"  # base units (e.g. ETH)


class FlipMode(StrEnum):
    """What an opposite-side alert does to an open position."""

    FLIP = "flip"  # close and open the other side when the alert's position asks for it
    REDUCE = "reduce"  # only reduce / close; never open the other side on one alert


class PreferenceField(StrEnum):
    """A preference /settings edits (short values: they travel in callback data)."""

    SIZE = "size"
    SLIPPAGE = "slip"
    LEVERAGE = "lev"
    NOTIONAL = "notional"
    POSITIONS = "positions"
    LOSS_LIMIT = "loss"
    MARKETS = "markets"
    FLIP = "flip"
    PAPER = "paper"
    TIMEZONE = "tz"
    DIGEST = "digest"


class Preferences(BaseModel):
    """A trader's preferences with their defaults.

    Attributes:
        default_size_kind: Sizing used when an alert carries no size.
        default_size_value: Its value (USD, percent of equity or base units).
        slippage_pct: Worst acceptable price of a market order, in percent from the oracle.
        max_leverage: Largest account leverage an order may leave behind.
        max_notional_usd: Largest notional of one order.
        max_open_positions: Most markets with an open position at once.
        daily_loss_limit_usd: Realized loss in a day (the trader's timezone) that pauses
            trading; None for no limit.
        allowed_markets: Markets alerts may trade; empty means every market.
        flip: Behaviour of an opposite-side alert.
        paper: Paper trading: orders are simulated, nothing reaches the exchange.
        timezone: IANA timezone for times shown and the daily loss window.
        digest_hour: Local hour (0-23) of the daily P&L digest; None (the default) for none.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    default_size_kind: SizeKind = SizeKind.USD
    default_size_value: Decimal = Field(default=Decimal("50"), gt=0, le=MAX_NOTIONAL_USD)
    slippage_pct: Decimal = Field(default=Decimal("1"), gt=0, le=MAX_SLIPPAGE_PCT)
    max_leverage: Decimal = Field(default=Decimal("5"), gt=0, le=MAX_LEVERAGE)
    max_notional_usd: Decimal = Field(default=Decimal("5000"), gt=0, le=MAX_NOTIONAL_USD)
    max_open_positions: int = Field(default=5, ge=1, le=MAX_OPEN_POSITIONS)
    daily_loss_limit_usd: Decimal | None = Field(default=None, gt=0, le=MAX_NOTIONAL_USD)
    allowed_markets: tuple[str, ...] = ()
    flip: FlipMode = FlipMode.FLIP
    paper: bool = False
    timezone: str = "UTC"
    digest_hour: int | None = Field(default=None, ge=0, le=23)

    @field_validator("allowed_markets")
    @classmethod
    def _tickers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(sorted({ticker.strip().upper() for ticker in value if ticker.strip()}))
        for ticker in cleaned:
            if len(ticker) > 32 or not ticker.replace("-", "").isalnum():
                raise ValueError(f"not a market ticker: {ticker[:32]}")
        return cleaned

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA timezone (e.g. Europe/Berlin)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The timezone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)

    def allows(self, market: str) -> bool:
        """Whether alerts may trade ``market``."""
        return not self.allowed_markets or market in self.allowed_markets

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form for the user row (decimals as strings)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Preferences:
        """Load stored preferences; an invalid stored value falls back to its default."""
        data = dict(data or {})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                if error["loc"]:
                    data.pop(str(error["loc"][0]), None)
            return cls.model_validate(data)

    def updated(self, **changes: Any) -> Preferences:
        """A copy with ``changes`` applied and validated.

        Raises:
            ValueError: A value is out of bounds (the message says which and why).
        """
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "value"
            raise ValueError(f"{field}: {first['msg']}") from None
