"""Keyboards of /start."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import start as texts


class DeclarationCD(CallbackData, prefix="decl"):
    """Acceptance of one declaration version."""

    version: str


def accept_declaration(version: str) -> InlineKeyboardMarkup:
    """The accept button for ``version``."""
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.ACCEPT_BUTTON, callback_data=DeclarationCD(version=version))
    return builder.as_markup()
