"""Keyboards of /delete_me."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import account as texts


class DeleteChoice(StrEnum):
    """What the user chose."""

    ALL = "all"
    KEEP = "keep"
    CANCEL = "cancel"


class DeleteMeCD(CallbackData, prefix="delme"):
    """A /delete_me answer."""

    choice: DeleteChoice


def confirm_delete() -> InlineKeyboardMarkup:
    """Three answers, one per row, the destructive one first and explicit."""
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.DELETE_ALL, callback_data=DeleteMeCD(choice=DeleteChoice.ALL))
    builder.button(text=texts.KEEP_HISTORY, callback_data=DeleteMeCD(choice=DeleteChoice.KEEP))
    builder.button(text=texts.CANCEL, callback_data=DeleteMeCD(choice=DeleteChoice.CANCEL))
    builder.adjust(1)
    return builder.as_markup()
