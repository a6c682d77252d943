"""The exchange boundary: a venue-neutral port (:mod:`.port`, :mod:`.orders`, :mod:`.errors`,
:mod:`.grid`, :mod:`.venue`, :mod:`.keys`), the per-trader :mod:`.provider`, the venues
(:mod:`.dydx`, :mod:`.paper`) and the :mod:`.factory` that is the only door to :mod:`.dydx`."""
