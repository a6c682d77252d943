"""The paper-trading venue: simulated fills at the live oracle price, never a byte sent to a node.

Modules: :mod:`~core.exchange.paper.venue` (:class:`~core.exchange.paper.venue.PaperExchange`,
the :class:`~core.exchange.port.Exchange` the rest of the code builds),
:mod:`~core.exchange.paper.book` (the matching and fill engine, pure),
:mod:`~core.exchange.paper.codec` (the encoding of paper transactions),
:mod:`~core.exchange.paper.rules` (the chain's acceptance rules and codes) and
:mod:`~core.exchange.paper.views` (ledger rows as the port shows them).
"""
