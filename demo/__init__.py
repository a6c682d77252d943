"""``tv2dydx demo``: the whole product against the protocol doubles, in a browser page.

Everything is simulated: a Telegram double stands in for Telegram and a dYdX double for the
exchange. The demo never talks to a real service (:mod:`demo.guard`).
"""
