"""/notify: where trade notifications go; and the fallback when a channel drops the bot."""

from __future__ import annotations

from typing import Final

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import ChatMemberAdministrator, ChatMemberUpdated, Message

from bot.channels import TelegramChannels
from core.services.control.notify import NotifyRefusedError
from core.services.control.service import ControlService
from core.services.users import UserView
from core.texts import notify as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")

_OFF = frozenset({"off", "here", "private", "me", "reset"})


@router.message(Command("notify"))
async def notify(
    message: Message, command: CommandObject, bot: Bot, user: UserView, control: ControlService
) -> None:
    """``/notify`` shows where; ``/notify @channel`` checks and moves; ``/notify off`` resets."""
    argument = (command.args or "").strip()
    if not argument:
        status = await control.status(user.id)
        await message.answer(texts.status(status.notify_chat_id is not None))
        return
    if argument.lower() in _OFF:
        await message.answer(texts.cleared(await control.clear_notify_chat(user.id)))
        return
    try:
        target = await control.set_notify_chat(user.id, argument, TelegramChannels(bot))
    except NotifyRefusedError as exc:
        await message.answer(texts.refused(exc.reason, exc.title))
        return
    await message.answer(texts.channel_set(target))


@router.my_chat_member(F.chat.type == "channel")
async def channel_membership(event: ChatMemberUpdated, control: ControlService) -> None:
    """The bot was removed from a channel or lost the right to post there: notifications
    of whoever used it go back to their private chats."""
    member = event.new_chat_member
    can_post = isinstance(member, ChatMemberAdministrator) and bool(member.can_post_messages)
    if can_post:
        return
    title = event.chat.title or str(event.chat.id)
    await control.channel_lost(event.chat.id, texts.channel_lost(title))
