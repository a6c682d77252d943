"""Keyboards of /key."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import key as texts
from core.texts import key_entry as entry_texts


class KeyAction(StrEnum):
    """What a button of the key screens does."""

    REPLACE = "replace"
    REMOVE = "remove"
    REMOVE_CONFIRM = "remove_yes"
    REMOVE_ABORT = "remove_no"
    PASTE = "paste"
    PASTE_REPLACING = "paste_repl"


class KeyCD(CallbackData, prefix="key"):
    """A button of the key status screen or of the removal confirmation."""

    action: KeyAction


def status_actions() -> InlineKeyboardMarkup:
    """Replace / Remove under the status screen."""
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.REPLACE_BUTTON, callback_data=KeyCD(action=KeyAction.REPLACE))
    builder.button(text=texts.REMOVE_BUTTON, callback_data=KeyCD(action=KeyAction.REMOVE))
    return builder.as_markup()


def confirm_remove() -> InlineKeyboardMarkup:
    """Yes / No under the removal question."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.CONFIRM_REMOVE_BUTTON, callback_data=KeyCD(action=KeyAction.REMOVE_CONFIRM)
    )
    builder.button(text=texts.KEEP_BUTTON, callback_data=KeyCD(action=KeyAction.REMOVE_ABORT))
    return builder.as_markup()


def add_key(form_url: str, *, replacing: bool = False) -> InlineKeyboardMarkup:
    """The Mini App form (a ``web_app`` button), and the chat as the fallback."""
    paste = KeyAction.PASTE_REPLACING if replacing else KeyAction.PASTE
    builder = InlineKeyboardBuilder()
    builder.button(text=entry_texts.FORM_BUTTON, web_app=WebAppInfo(url=form_url))
    builder.button(text=entry_texts.PASTE_BUTTON, callback_data=KeyCD(action=paste))
    builder.adjust(1)
    return builder.as_markup()
