"""Telegram as the notification-channel check sees it (:class:`ChannelAccess` over aiogram)."""

from __future__ import annotations

from enum import Enum

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberAdministrator

from core.services.control.notify import (
    ChannelNotFoundError,
    ChannelPostError,
    ChatInfo,
    Membership,
)
from core.texts import notify as texts


class TelegramChannels:
    """Looks chats and members up, and posts the test message, with the running bot."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def chat(self, reference: str | int) -> ChatInfo:
        """``getChat``.

        Raises:
            ChannelNotFoundError: Telegram refused (unknown, or private and not a member).
        """
        try:
            chat = await self._bot.get_chat(reference)
        except TelegramAPIError:
            raise ChannelNotFoundError from None
        return ChatInfo(
            id=chat.id,
            title=chat.title or str(chat.id),
            kind=_plain(chat.type),
            username=chat.username,
        )

    async def bot_membership(self, chat_id: int) -> Membership:
        """``getChatMember`` of the bot itself."""
        try:
            return _membership(await self._bot.get_chat_member(chat_id, self._bot.id))
        except TelegramAPIError:
            return Membership(status="left")

    async def membership(self, chat_id: int, telegram_id: int) -> Membership:
        """``getChatMember`` of a user.

        Raises:
            ChannelNotFoundError: The member list is not readable.
        """
        try:
            return _membership(await self._bot.get_chat_member(chat_id, telegram_id))
        except TelegramAPIError:
            raise ChannelNotFoundError from None

    async def post_test(self, chat_id: int) -> None:
        """Post the test message.

        Raises:
            ChannelPostError: Telegram refused it.
        """
        try:
            await self._bot.send_message(chat_id, texts.test_post())
        except TelegramAPIError as exc:
            raise ChannelPostError(str(exc)) from None


def _plain(value: object) -> str:
    """aiogram's ``(str, Enum)`` values print as ``ChatType.CHANNEL``: use the value."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _membership(member: object) -> Membership:
    status = _plain(getattr(member, "status", "left"))
    can_post = isinstance(member, ChatMemberAdministrator) and bool(member.can_post_messages)
    return Membership(status=status, can_post_messages=can_post)
