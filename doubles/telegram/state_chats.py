"""Chats as the Telegram double stores them: private chats and channels (internals).

Mutated only on the double's own event loop thread, like everything in :mod:`.state`.
"""

from __future__ import annotations

import itertools
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .state import ChatMessage, UserProfile

if TYPE_CHECKING:
    from .state_world import BotState


class ChatState(ABC):
    """A chat as the double stores it (internals)."""

    type = ""

    def __init__(self, chat_id: int) -> None:
        self.id = chat_id
        self.messages: dict[int, ChatMessage] = {}
        self.chat_instance = str(secrets.randbelow(2**62) - 2**61)
        self._message_ids = itertools.count(1)

    @abstractmethod
    def to_api(self) -> dict[str, Any]:
        """Return the short ``Chat`` object embedded in messages."""

    def next_message_id(self) -> int:
        """Return the next message id of this chat."""
        return next(self._message_ids)

    def find(self, message_id: int | None) -> ChatMessage | None:
        """Return the live (not deleted) message with that id."""
        message = self.messages.get(message_id) if message_id is not None else None
        return None if message is None or message.deleted else message


class PrivateChat(ChatState):
    """The private chat between one bot and one user (internals)."""

    type = "private"

    def __init__(self, bot: BotState, user: UserProfile) -> None:
        super().__init__(user.id)
        self.bot = bot
        self.user = user
        self.started = False
        self.blocked = False
        self.reply_keyboard: dict[str, Any] | None = None
        self.menu_button: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the ``Chat`` object of a private chat."""
        chat: dict[str, Any] = {"id": self.user.id, "first_name": self.user.first_name}
        if self.user.last_name:
            chat["last_name"] = self.user.last_name
        if self.user.username:
            chat["username"] = self.user.username
        chat["type"] = "private"
        return chat


@dataclass
class ChannelMembership:
    """A bot's standing in a channel (internals).

    Attributes:
        status: ``administrator``, ``left`` or ``kicked``.
        rights: Administrator rights, when an administrator.
    """

    status: str
    rights: dict[str, bool] = field(default_factory=dict)


class Channel(ChatState):
    """A channel a test created (internals)."""

    type = "channel"

    def __init__(
        self,
        chat_id: int,
        title: str,
        username: str | None,
        owner: UserProfile | None,
        subscribers: int,
    ) -> None:
        super().__init__(chat_id)
        self.title = title
        self.username = username
        self.owner = owner
        self.subscribers = subscribers
        self.description = ""
        self.bots: dict[int, ChannelMembership] = {}
        self._message_ids = itertools.count(2)  # message 1 is the "channel created" service

    def to_api(self) -> dict[str, Any]:
        """Return the ``Chat`` object of the channel."""
        chat: dict[str, Any] = {"id": self.id, "title": self.title}
        if self.username:
            chat["username"] = self.username
        chat["type"] = "channel"
        return chat

    def membership(self, bot_id: int) -> ChannelMembership:
        """Return the bot's membership (``left`` when it never joined)."""
        return self.bots.get(bot_id) or ChannelMembership("left")
