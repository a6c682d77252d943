"""Exchange adapters. Only small, reusable readers live here for now; the exchange port
(place, cancel, positions, fills, streams) comes later."""
