"""dYdX v4: the venue adapter, non-blocking node and Indexer clients, chain error mapping,
quantization and pure key/authenticator analysis. Reached only through
:mod:`core.exchange.factory`."""
