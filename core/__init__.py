"""tv2dydx core: configuration, ledger, services, crypto and the exchange port.

``core`` depends on none of ``bot``, ``webhook_server`` or ``workers``.
"""

__version__ = "0.1.0"
