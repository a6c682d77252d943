"""One router per feature, joined in :func:`get_routers`."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import start


def get_routers() -> list[Router]:
    """Every feature router, in matching order."""
    return [start.router]
