"""/why ALERT_ID: what happened to one alert, step by step."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from core.services.control.service import ControlService
from core.services.users import UserView
from core.texts import why as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(Command("why"))
async def why(
    message: Message, command: CommandObject, user: UserView, control: ControlService
) -> None:
    """Show the alert's timeline in the user's timezone."""
    reference = (command.args or "").strip()
    if not reference:
        await message.answer(texts.usage())
        return
    view = await control.timeline(user.id, reference)
    if view is None:
        await message.answer(texts.not_found(reference))
        return
    await message.answer(texts.timeline(view))
