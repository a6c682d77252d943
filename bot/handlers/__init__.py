"""Routers: public ones, the gated features (after the declaration), then the fallback."""

from __future__ import annotations

from aiogram import Router

from bot.filters import DeclarationAccepted
from bot.handlers import (
    account,
    analytics,
    control,
    fallback,
    key,
    link,
    notify,
    pnl,
    protection,
    settings,
    start,
    trading,
    webhook,
    why,
)


def get_routers() -> list[Router]:
    """Every router, in matching order. Call once per process (routers attach once)."""
    gated = Router(name="gated")
    gated.message.filter(DeclarationAccepted())
    gated.callback_query.filter(DeclarationAccepted())
    # Feature routers that need the declaration, one per feature.
    features: list[Router] = [
        key.router,
        link.router,
        webhook.router,
        control.router,
        settings.router,
        notify.router,
        why.router,
        trading.router,
        protection.router,
        analytics.router,
        pnl.router,
    ]
    for feature in features:
        gated.include_router(feature)
    return [start.router, account.router, gated, fallback.router]
