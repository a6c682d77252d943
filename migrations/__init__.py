"""Alembic migrations of the tv2dydx schema (run with ``tv2dydx migrate``)."""
