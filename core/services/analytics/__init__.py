"""P&L analytics: round trips and statistics from the ledger, the trade history and its CSV
export, the P&L chart and its renderer, funding payments and the daily digest."""
