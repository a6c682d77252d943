"""tv2dydx."""
