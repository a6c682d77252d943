"""Keyboards of /panic."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import trading as texts


class PanicChoice(StrEnum):
    """What the trader answered."""

    CONFIRM = "yes"
    CANCEL = "no"


class PanicCD(CallbackData, prefix="panic"):
    """A /panic answer, bound to the token of the question it answers (single use)."""

    choice: PanicChoice
    token: str


def confirm_panic(token: str) -> InlineKeyboardMarkup:
    """The destructive answer first and explicit, then the way out."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.PANIC_CONFIRM_BUTTON,
        callback_data=PanicCD(choice=PanicChoice.CONFIRM, token=token),
    )
    builder.button(
        text=texts.PANIC_CANCEL_BUTTON,
        callback_data=PanicCD(choice=PanicChoice.CANCEL, token=token),
    )
    builder.adjust(1)
    return builder.as_markup()
