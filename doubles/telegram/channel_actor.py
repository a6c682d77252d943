"""Simulated channels: a test's channel and one bot's standing in it."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .formatting import format_text
from .methods import member_object
from .state import CHANNEL_ADMIN_RIGHTS, BotIdentity, ChatMessage, MessageVersion, UserProfile, now
from .state_chats import Channel, ChannelMembership, ChatState

if TYPE_CHECKING:
    from .server import TelegramDouble

Predicate = Callable[[ChatMessage], bool]
T = TypeVar("T")


def bot_messages_after(chat: ChatState | None, cursor: int) -> list[ChatMessage]:
    if chat is None:
        return []
    return [
        message
        for message_id, message in list(chat.messages.items())
        if message_id > cursor and message.from_bot
    ]


async def run_now(fn: Callable[[], T]) -> T:
    """Run ``fn`` as a coroutine (on the double's loop, through ``_run``)."""
    return fn()


class SimulatedChannel:
    """A channel created by a test, and one bot's standing in it.

    Attributes:
        bot: The bot whose membership the channel was created with.
        owner: The channel's creator.
    """

    def __init__(
        self, double: TelegramDouble, channel: Channel, bot: BotIdentity, owner: UserProfile
    ) -> None:
        self._double = double
        self._channel = channel
        self.bot = bot
        self.owner = owner
        self._cursor = 0

    def __repr__(self) -> str:
        return f"<SimulatedChannel {self.id} {self.title!r}>"

    @property
    def id(self) -> int:
        """Return the chat id (``-100...``)."""
        return self._channel.id

    @property
    def chat_id(self) -> int:
        """Return the chat id (``-100...``)."""
        return self._channel.id

    @property
    def title(self) -> str:
        """Return the title."""
        return self._channel.title

    @property
    def username(self) -> str | None:
        """Return the public username, ``None`` for a private channel."""
        return self._channel.username

    @property
    def posts(self) -> list[ChatMessage]:
        """Return every post, deleted ones included."""
        return list(self._channel.messages.values())

    def bot_status(self, bot: BotIdentity | None = None) -> str:
        """Return ``administrator``, ``left`` or ``kicked``."""
        return self._channel.membership((bot or self.bot).id).status

    def bot_rights(self, bot: BotIdentity | None = None) -> dict[str, bool]:
        """Return the bot's administrator rights (empty unless an administrator)."""
        return dict(self._channel.membership((bot or self.bot).id).rights)

    async def set_bot_status(
        self, status: str, *, bot: BotIdentity | None = None, **rights: bool
    ) -> None:
        """Promote, restrict, remove or ban the bot; it gets a ``my_chat_member`` update.

        Args:
            status: ``administrator``, ``left`` or ``kicked``.
            bot: The bot (the channel's bot if omitted).
            **rights: Administrator rights overriding the defaults.
        """
        if status not in {"administrator", "left", "kicked"}:
            raise ValueError("status must be 'administrator', 'left' or 'kicked'")
        identity = bot or self.bot

        def apply() -> None:
            world = self._double._world
            state = self._double._bot_state(identity)
            old = self._channel.membership(identity.id)
            new = ChannelMembership(
                status, {**CHANNEL_ADMIN_RIGHTS, **rights} if status == "administrator" else {}
            )
            self._channel.bots[identity.id] = new
            bot_user = identity.to_api()
            world.push_update(
                state,
                "my_chat_member",
                {
                    "chat": self._channel.to_api(),
                    "from": self.owner.to_api(),
                    "date": now(),
                    "old_chat_member": member_object(bot_user, old),
                    "new_chat_member": member_object(bot_user, new),
                },
            )

        await self._double._run(run_now(apply))

    async def post(self, text: str) -> ChatMessage:
        """Publish a post as the channel (``channel_post`` updates to administrator bots)."""

        def publish() -> ChatMessage:
            world = self._double._world
            plain, parsed = format_text(text, None)
            message = ChatMessage(
                chat=self._channel,
                message_id=self._channel.next_message_id(),
                sender_kind="channel",
                sender=None,
                version=MessageVersion(text=plain, entities=tuple(parsed), raw=text),
            )
            self._channel.messages[message.message_id] = message
            for bot_id, membership in self._channel.bots.items():
                state = world.bots_by_id.get(bot_id)
                if state is not None and membership.status == "administrator":
                    world.push_update(state, "channel_post", message.to_api())
            world.notify()
            return message

        return await self._double._run(run_now(publish))

    async def next_post(self, timeout: float = 5.0) -> ChatMessage:
        """Return the next post a bot made that the test has not read yet."""
        return await self.wait_for(lambda _message: True, timeout)

    async def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> ChatMessage:
        """Return the first unread bot post matching ``predicate`` (earlier ones are skipped)."""

        def take() -> ChatMessage | None:
            for message in bot_messages_after(self._channel, self._cursor):
                if predicate(message):
                    self._cursor = message.message_id
                    return message
            return None

        return await self._double._run(
            self._double._wait(take, timeout, lambda: f"no matching bot post in {self!r}")
        )
