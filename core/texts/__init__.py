"""Every user-facing sentence and formatter, shared by the bot and the worker's notifications."""
