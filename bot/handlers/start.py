"""/start and /help."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import texts
from core.services.users import UserService

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(CommandStart())
async def start(message: Message, users: UserService) -> None:
    """Register the user and greet them."""
    assert message.from_user is not None  # private chats always have a sender
    sender = message.from_user
    _user, created = await users.register(
        sender.id, username=sender.username, language_code=sender.language_code
    )
    await message.answer(texts.welcome(sender.first_name, returning=not created))


@router.message(Command("help"))
async def help_command(message: Message) -> None:
    """Explain every command on one screen."""
    await message.answer(texts.help_text())
