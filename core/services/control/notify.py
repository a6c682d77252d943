"""Checking a Telegram channel as the target of a trader's notifications (no database).

The checks need Telegram as the bot sees it, behind :class:`ChannelAccess`, which the bot
implements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

CHANNEL_LOST_NOTICE = "notify_channel_lost"


class NotifyRefusal(StrEnum):
    """Why a chat cannot receive the notifications."""

    NOT_FOUND = "not_found"  # unknown, or private and the bot is not in it
    NOT_A_CHANNEL = "not_a_channel"
    BOT_NOT_ADMIN = "bot_not_admin"
    BOT_CANNOT_POST = "bot_cannot_post"
    NOT_OWNER = "not_owner"
    POST_FAILED = "post_failed"
    BAD_REFERENCE = "bad_reference"


class NotifyRefusedError(Exception):
    """The chat was refused as the notification target.

    Attributes:
        reason: What is wrong.
        title: The chat's title when it was found.
    """

    def __init__(self, reason: NotifyRefusal, title: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.title = title


class ChannelNotFoundError(Exception):
    """The bot cannot see the chat."""


class ChannelPostError(Exception):
    """The bot could not post in the chat."""


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """A chat as the Telegram Bot API shows it.

    Attributes:
        id: Chat id (``-100…`` for channels).
        title: Title.
        kind: ``channel``, ``supergroup``, ``group`` or ``private``.
        username: Public username, if any.
    """

    id: int
    title: str
    kind: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """Someone's standing in a chat.

    Attributes:
        status: ``creator``, ``administrator``, ``member``, ``restricted``, ``left`` or
            ``kicked``.
        can_post_messages: Whether an administrator may post in a channel.
    """

    status: str
    can_post_messages: bool = False


class ChannelAccess(Protocol):
    """What checking a notification channel needs from Telegram (the bot implements it)."""

    async def chat(self, reference: str | int) -> ChatInfo:
        """Look a chat up by ``@username`` or id.

        Raises:
            ChannelNotFoundError: The bot cannot see it.
        """
        ...

    async def bot_membership(self, chat_id: int) -> Membership:
        """The bot's own standing in the chat."""
        ...

    async def membership(self, chat_id: int, telegram_id: int) -> Membership:
        """A user's standing in the chat (needs the bot to be an administrator).

        Raises:
            ChannelNotFoundError: The member list cannot be read.
        """
        ...

    async def post_test(self, chat_id: int) -> None:
        """Post the test message.

        Raises:
            ChannelPostError: The message was refused.
        """
        ...


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """A chat that now receives the notifications.

    Attributes:
        chat_id: Its id.
        title: Its title.
    """

    chat_id: int
    title: str


@dataclass(frozen=True, slots=True)
class LostChannel:
    """A user whose notification channel stopped accepting the bot's posts."""

    user_id: int
    telegram_id: int


async def check_channel(access: ChannelAccess, target: str | int, telegram_id: int) -> ChatInfo:
    """Check that a chat can receive the notifications of the user ``telegram_id``.

    Checks, in order: the chat exists and is a channel, the bot is an administrator
    allowed to post, the user is its owner; then posts a test message.

    Args:
        access: Telegram, as the bot sees it.
        target: The chat, as :func:`chat_reference` gives it.
        telegram_id: The user's Telegram id.

    Returns:
        The chat.

    Raises:
        NotifyRefusedError: A check failed.
    """
    try:
        chat = await access.chat(target)
    except ChannelNotFoundError:
        raise NotifyRefusedError(NotifyRefusal.NOT_FOUND) from None
    if chat.kind != "channel":
        raise NotifyRefusedError(NotifyRefusal.NOT_A_CHANNEL, chat.title)
    bot = await access.bot_membership(chat.id)
    if bot.status != "administrator":
        raise NotifyRefusedError(NotifyRefusal.BOT_NOT_ADMIN, chat.title)
    if not bot.can_post_messages:
        raise NotifyRefusedError(NotifyRefusal.BOT_CANNOT_POST, chat.title)
    try:
        owner = await access.membership(chat.id, telegram_id)
    except ChannelNotFoundError:
        raise NotifyRefusedError(NotifyRefusal.NOT_OWNER, chat.title) from None
    if owner.status != "creator":
        raise NotifyRefusedError(NotifyRefusal.NOT_OWNER, chat.title)
    try:
        await access.post_test(chat.id)
    except ChannelPostError:
        raise NotifyRefusedError(NotifyRefusal.POST_FAILED, chat.title) from None
    return chat


def chat_reference(text: str) -> str | int:
    """``@name`` / ``t.me/name`` / ``-100…`` as what getChat takes.

    Raises:
        NotifyRefusedError: It is none of those.
    """
    cleaned = text.strip()
    for prefix in ("https://t.me/", "http://t.me/", "t.me/"):
        if cleaned.lower().startswith(prefix):
            cleaned = "@" + cleaned[len(prefix) :].strip("/")
    if re.fullmatch(r"-100\d{5,15}", cleaned):
        return int(cleaned)
    if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", cleaned):
        return cleaned
    raise NotifyRefusedError(NotifyRefusal.BAD_REFERENCE)
