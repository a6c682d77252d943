"""/pause and /resume: stop and restart the execution of alerts."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message

from core.services.control.service import ControlService, ResumeRefusedError
from core.services.users import UserView
from core.texts import control as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(Command("pause"))
async def pause(message: Message, user: UserView, control: ControlService) -> None:
    """Pause: alerts are recorded, not executed."""
    changed = await control.pause(user.id)
    await message.answer(texts.paused() if changed else texts.already_paused())


@router.message(Command("resume"))
async def resume(message: Message, user: UserView, control: ControlService) -> None:
    """Resume, unless the account may not trade at all."""
    try:
        result = await control.resume(user.id)
    except ResumeRefusedError as exc:
        await message.answer(texts.resume_refused(exc.compliance))
        return
    await message.answer(texts.resumed(result))
