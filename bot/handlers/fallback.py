"""Last resort: anything no feature handled."""

from __future__ import annotations

from contextlib import suppress
from typing import Final

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message

from core.security.secrets import looks_secret
from core.services.users import UserView
from core.texts import common
from core.texts import start as start_texts

router: Final[Router] = Router(name=__name__)


@router.message(F.chat.type == "private")
async def unhandled_message(message: Message, user: UserView | None = None) -> None:
    """Say what to do next instead of staying silent; never leave a secret in the chat."""
    if looks_secret(message.text or message.caption or ""):
        with suppress(TelegramBadRequest):  # already gone: nothing left to protect
            await message.delete()
        await message.answer(common.secret_deleted())
        return
    if user is not None and not user.declaration_current:
        await message.answer(start_texts.declaration_required())
        return
    await message.answer(common.unknown_command())


@router.callback_query()
async def unhandled_button(query: CallbackQuery, user: UserView | None = None) -> None:
    """A button from an old message, or pressed before the declaration."""
    if user is not None and not user.declaration_current:
        await query.answer(start_texts.declaration_required(), show_alert=True)
        return
    await query.answer("This button has expired.")
