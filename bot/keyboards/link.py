"""Keyboards of /link and /unlink."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import link as texts


class UnlinkChoice(StrEnum):
    """What the user chose."""

    UNLINK = "unlink"
    KEEP = "keep"


class UnlinkCD(CallbackData, prefix="unlink"):
    """An /unlink answer, bound to the address it was asked about (40 hex digits)."""

    choice: UnlinkChoice
    address: str


def open_link(url: str) -> InlineKeyboardMarkup:
    """One button opening the wallet-link page: as a Mini App (which proves to the page who
    opened it) when the site is https, which Telegram requires; else a plain URL button."""
    builder = InlineKeyboardBuilder()
    if url.startswith("https://"):
        builder.button(text=texts.OPEN_BUTTON, web_app=WebAppInfo(url=url))
    else:
        builder.button(text=texts.OPEN_BUTTON, url=url)
    return builder.as_markup()


def confirm_unlink(address: str) -> InlineKeyboardMarkup:
    """Unlink or keep ``address``."""
    bound = address.lower().removeprefix("0x")
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.UNLINK_BUTTON,
        callback_data=UnlinkCD(choice=UnlinkChoice.UNLINK, address=bound),
    )
    builder.button(
        text=texts.KEEP_BUTTON, callback_data=UnlinkCD(choice=UnlinkChoice.KEEP, address=bound)
    )
    return builder.as_markup()
