"""dYdX v4 chain constants the adapter (and the paper venue, which mimics the chain) rely on."""

from __future__ import annotations

from core.exchange.port import VenueCapabilities

#: ``ShortBlockWindow`` of the chain since protocol v9.5.0 (it was 20 before).
SHORT_BLOCK_WINDOW = 40
#: Blocks kept free at the end of the window: our height may be ahead of the checking node.
SHORT_BLOCK_SAFETY_MARGIN = 10
#: What dYdX v4 can do, as the port describes venues.
CAPABILITIES = VenueCapabilities(
    short_term_window=SHORT_BLOCK_WINDOW, short_term_safety_margin=SHORT_BLOCK_SAFETY_MARGIN
)
