"""The Telegram bot (aiogram 3): routers, keyboards and texts."""
