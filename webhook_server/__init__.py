"""The aiohttp web server: TradingView alerts, the wallet-link page and health probes."""
