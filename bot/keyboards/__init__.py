"""Inline keyboards and their ``CallbackData`` factories, one module per feature."""
