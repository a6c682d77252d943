"""TradingView alerts: decoding, validation, normalisation and dedupe keys (pure, no I/O)."""
