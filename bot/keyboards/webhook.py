"""Keyboards of /webhook."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import webhook as texts


class WebhookAction(StrEnum):
    """A /webhook button."""

    ROTATE = "rotate"  # ask first
    REVOKE = "revoke"  # ask first
    CONFIRM_ROTATE = "rotate_yes"
    CONFIRM_REVOKE = "revoke_yes"
    CANCEL = "cancel"


class WebhookCD(CallbackData, prefix="hook"):
    """A /webhook button press."""

    action: WebhookAction


def _button(builder: InlineKeyboardBuilder, text: str, action: WebhookAction) -> None:
    builder.button(text=text, callback_data=WebhookCD(action=action))


def manage() -> InlineKeyboardMarkup:
    """Rotate or revoke the live webhook."""
    builder = InlineKeyboardBuilder()
    _button(builder, texts.ROTATE_BUTTON, WebhookAction.ROTATE)
    _button(builder, texts.REVOKE_BUTTON, WebhookAction.REVOKE)
    builder.adjust(1)
    return builder.as_markup()


def confirm(action: WebhookAction) -> InlineKeyboardMarkup:
    """Confirm a rotation or revocation (both stop the current URL at once)."""
    builder = InlineKeyboardBuilder()
    if action is WebhookAction.ROTATE:
        _button(builder, texts.CONFIRM_ROTATE_BUTTON, WebhookAction.CONFIRM_ROTATE)
    else:
        _button(builder, texts.CONFIRM_REVOKE_BUTTON, WebhookAction.CONFIRM_REVOKE)
    _button(builder, texts.CANCEL_BUTTON, WebhookAction.CANCEL)
    builder.adjust(1)
    return builder.as_markup()
