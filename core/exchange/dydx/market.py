"""A dYdX v4 market as the adapter keeps it: the venue-neutral :class:`MarketInfo` plus the
chain's CLOB pair id and quantization parameters, which never leave the adapter."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.exchange.port import MarketInfo


@dataclass(frozen=True, slots=True)
class DydxMarket:
    """One perpetual market with its chain parameters.

    Attributes:
        info: The market as the port describes it.
        clob_pair_id: The chain's CLOB pair id.
        atomic_resolution: Base quantums are ``size * 10**-atomic_resolution``.
        quantum_conversion_exponent: Relates subticks to quote quantums.
        step_base_quantums: Order quantums are multiples of this.
        subticks_per_tick: Order subticks are multiples of this.
    """

    info: MarketInfo
    clob_pair_id: int
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int

    @property
    def ticker(self) -> str:
        """The market's ticker."""
        return self.info.ticker

    @property
    def step_size(self) -> Decimal:
        """Size increment in base units."""
        return self.info.step_size

    @property
    def tick_size(self) -> Decimal:
        """Price increment in USD."""
        return self.info.tick_size
