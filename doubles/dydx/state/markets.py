"""Perpetual markets of the dYdX v4 double and their quantum/subtick arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal


@dataclass
class Market:
    """A perpetual market and its CLOB pair (mainnet parameters).

    Attributes:
        ticker: e.g. ``"BTC-USD"``.
        clob_pair_id: CLOB pair id (also the perpetual id for the listed markets).
        market_id: Oracle market id.
        atomic_resolution: Base quantums are ``size * 10**-atomic_resolution``.
        quantum_conversion_exponent: Relates subticks to quote quantums.
        step_base_quantums: Order sizes are multiples of this.
        subticks_per_tick: Order prices are multiples of this.
        initial_margin_fraction: IMF of the liquidity tier.
        maintenance_margin_fraction: MMF of the liquidity tier.
        oracle_price: Current oracle price in USD.
    """

    ticker: str
    clob_pair_id: int
    market_id: int
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    initial_margin_fraction: Decimal
    maintenance_margin_fraction: Decimal
    oracle_price: Decimal
    oracle_effective_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    oracle_effective_height: int = 0
    status: str = "ACTIVE"
    market_type: str = "CROSS"
    open_interest_lower_cap: Decimal = Decimal(0)
    open_interest_upper_cap: Decimal = Decimal(0)

    @property
    def _price_exponent(self) -> int:
        # price = subticks * 10**(QCE - AR - 6)  (quote asset USDC has atomic resolution -6)
        return self.quantum_conversion_exponent - self.atomic_resolution - 6

    @property
    def tick_size(self) -> Decimal:
        """Price increment in USD."""
        return self.price_from_subticks(self.subticks_per_tick)

    @property
    def step_size(self) -> Decimal:
        """Size increment in base units."""
        return self.size_from_quantums(self.step_base_quantums)

    def size_from_quantums(self, quantums: int) -> Decimal:
        """Convert base quantums to a human size."""
        return Decimal(quantums).scaleb(self.atomic_resolution)

    def quantums_from_size(self, size: Decimal) -> int:
        """Convert a human size to base quantums (exact; rounds toward zero)."""
        return int(size.scaleb(-self.atomic_resolution).to_integral_value(rounding=ROUND_FLOOR))

    def price_from_subticks(self, subticks: int) -> Decimal:
        """Convert subticks to a USD price."""
        return Decimal(subticks).scaleb(self._price_exponent)

    def subticks_from_price(self, price: Decimal) -> int:
        """Convert a USD price to subticks (rounds down)."""
        return int(price.scaleb(-self._price_exponent).to_integral_value(rounding=ROUND_FLOOR))

    def round_to_tick(self, price: Decimal, *, up: bool) -> Decimal:
        """Round ``price`` to a whole tick (at least one tick)."""
        ticks = (price / self.tick_size).to_integral_value(
            rounding=ROUND_CEILING if up else ROUND_FLOOR
        )
        return max(ticks, Decimal(1)) * self.tick_size


def default_markets() -> dict[str, Market]:
    """BTC-USD, ETH-USD and SOL-USD with mainnet parameters (Indexer, Dec 2025)."""
    return {
        "BTC-USD": Market(
            ticker="BTC-USD",
            clob_pair_id=0,
            market_id=0,
            atomic_resolution=-10,
            quantum_conversion_exponent=-9,
            step_base_quantums=1_000_000,
            subticks_per_tick=100_000,
            initial_margin_fraction=Decimal("0.02"),
            maintenance_margin_fraction=Decimal("0.012"),
            oracle_price=Decimal("90000"),
        ),
        "ETH-USD": Market(
            ticker="ETH-USD",
            clob_pair_id=1,
            market_id=1,
            atomic_resolution=-9,
            quantum_conversion_exponent=-9,
            step_base_quantums=1_000_000,
            subticks_per_tick=100_000,
            initial_margin_fraction=Decimal("0.02"),
            maintenance_margin_fraction=Decimal("0.012"),
            oracle_price=Decimal("3000"),
        ),
        "SOL-USD": Market(
            ticker="SOL-USD",
            clob_pair_id=5,
            market_id=5,
            atomic_resolution=-7,
            quantum_conversion_exponent=-9,
            step_base_quantums=1_000_000,
            subticks_per_tick=1_000_000,
            initial_margin_fraction=Decimal("0.05"),
            maintenance_margin_fraction=Decimal("0.03"),
            oracle_price=Decimal("135"),
            open_interest_lower_cap=Decimal(40_000_000),
            open_interest_upper_cap=Decimal(100_000_000),
        ),
    }
