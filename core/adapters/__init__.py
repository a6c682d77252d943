"""Adapters to frameworks: the aiogram Bot, arq's queue and Telegram's webhook transport."""
