"""Keyboards of /pnl (period buttons) and /trades (pages, CSV export)."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.services.analytics.periods import Period
from core.texts import analytics as texts


class PnlCD(CallbackData, prefix="pnl"):
    """Show the P&L chart of another period (edits the photo in place)."""

    period: Period


class TradesAction(StrEnum):
    """What a /trades button asks for."""

    PAGE = "p"
    EXPORT = "csv"


class TradesCD(CallbackData, prefix="trades"):
    """Another page of /trades, or the CSV export."""

    action: TradesAction
    page: int = 0


def periods(current: Period) -> InlineKeyboardMarkup:
    """One row of period buttons; the current one is marked."""
    builder = InlineKeyboardBuilder()
    for period in Period:
        label = texts.PERIOD_BUTTONS[period.value]
        builder.button(
            text=f"• {label} •" if period is current else label,
            callback_data=PnlCD(period=period),
        )
    builder.adjust(len(Period))
    return builder.as_markup()


def trades(page: int, pages: int, *, exportable: bool) -> InlineKeyboardMarkup | None:
    """Newer / older pages, then Export CSV."""
    builder = InlineKeyboardBuilder()
    row = 0
    if page > 0:
        builder.button(
            text=texts.NEWER_BUTTON, callback_data=TradesCD(action=TradesAction.PAGE, page=page - 1)
        )
        row += 1
    if page + 1 < pages:
        builder.button(
            text=texts.OLDER_BUTTON, callback_data=TradesCD(action=TradesAction.PAGE, page=page + 1)
        )
        row += 1
    if exportable:
        builder.button(text=texts.EXPORT_BUTTON, callback_data=TradesCD(action=TradesAction.EXPORT))
    if not row and not exportable:
        return None
    builder.adjust(*([row, 1] if row else [1]))
    return builder.as_markup()
