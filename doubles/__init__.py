"""Protocol-faithful offline doubles of the Telegram Bot API and dYdX v4 (tests only)."""
