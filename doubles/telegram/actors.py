"""Simulated users: the test-facing side of the Telegram double (channels: channel_actor)."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .channel_actor import Predicate, bot_messages_after, run_now
from .errors import ApiError
from .formatting import format_text
from .methods import member_object, store_document, store_photo
from .state import BotIdentity, ChatMessage, MessageVersion, UserProfile, now
from .state_chats import ChannelMembership, PrivateChat
from .state_world import BotState, CallbackAnswer, PendingCallback
from .webapp import init_data_for, launch_url

if TYPE_CHECKING:
    from .media import StoredFile
    from .server import TelegramDouble

T = TypeVar("T")


class SimulatedUser:
    """A Telegram user in a private chat with one bot.

    Every ``async`` method may be awaited from any event loop; it runs on the double's.

    Attributes:
        profile: The account (id, names, language).
        bot: The bot this user talks to.

    Example:
        >>> user = double.user(id=1001, first_name="Alice", username="alice")
        >>> sent = await user.send("/start")
        >>> reply = await user.next_message()
        >>> answer = await user.press(reply, "confirm")
    """

    def __init__(self, double: TelegramDouble, profile: UserProfile, bot: BotIdentity) -> None:
        self._double = double
        self.profile = profile
        self.bot = bot
        self._cursor = 0

    def __repr__(self) -> str:
        return f"<SimulatedUser {self.id} {self.first_name!r} with @{self.bot.username}>"

    @property
    def id(self) -> int:
        """Return the user id (also the private chat's id)."""
        return self.profile.id

    @property
    def chat_id(self) -> int:
        """Return the id of the private chat with the bot."""
        return self.profile.id

    @property
    def first_name(self) -> str:
        """Return the first name."""
        return self.profile.first_name

    @property
    def username(self) -> str | None:
        """Return the username."""
        return self.profile.username

    def _state(self) -> BotState:
        return self._double._bot_state(self.bot)

    def _chat(self) -> PrivateChat | None:
        return self._double._world.private_chats.get((self.bot.id, self.id))

    @property
    def messages(self) -> list[ChatMessage]:
        """Return every message of the chat, both sides, deleted ones included."""
        chat = self._chat()
        return list(chat.messages.values()) if chat else []

    @property
    def bot_messages(self) -> list[ChatMessage]:
        """Return the bot's messages in the chat, deleted ones included."""
        return [message for message in self.messages if message.from_bot]

    @property
    def started(self) -> bool:
        """Tell whether the user has ever written to the bot."""
        chat = self._chat()
        return bool(chat and chat.started)

    @property
    def blocked(self) -> bool:
        """Tell whether the user has blocked the bot."""
        chat = self._chat()
        return bool(chat and chat.blocked)

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Return the reply keyboard the bot shows (button texts by row), if any."""
        chat = self._chat()
        if chat is None or chat.reply_keyboard is None:
            return None
        return [
            [button if isinstance(button, str) else button.get("text", "") for button in row]
            for row in chat.reply_keyboard.get("keyboard", [])
        ]

    @property
    def menu_button(self) -> dict[str, Any]:
        """Return the menu button this user sees (``setChatMenuButton``)."""
        chat = self._chat()
        state = self._state()
        own = chat.menu_button if chat else None
        return own or state.default_menu_button or {"type": "commands"}

    # --- acting ------------------------------------------------------------------------

    def _post(
        self,
        version: MessageVersion,
        *,
        reply_to: ChatMessage | None = None,
        photo_files: list[StoredFile] | None = None,
        document_file: StoredFile | None = None,
    ) -> ChatMessage:
        world = self._double._world
        state = self._state()
        chat = world.private_chat(state, self.profile)
        if chat.blocked:
            # Writing again is how a user restarts a bot they blocked.
            self._set_blocked(False)
        chat.started = True
        message = ChatMessage(
            chat=chat,
            message_id=chat.next_message_id(),
            sender_kind="user",
            sender=self.profile.to_api(),
            version=version,
            reply_to=reply_to,
            photo_files=photo_files,
            document_file=document_file,
        )
        chat.messages[message.message_id] = message
        world.push_update(state, "message", message.to_api())
        return message

    async def send(
        self,
        text: str,
        *,
        entities: list[dict[str, Any]] | None = None,
        reply_to: ChatMessage | None = None,
    ) -> ChatMessage:
        """Send a text message to the bot (a ``message`` update).

        Commands, mentions, URLs... get their entities as Telegram's clients produce them.

        Returns:
            The message, live: it shows later deletion by the bot.
        """

        def post() -> ChatMessage:
            plain, parsed = format_text(text, None, entities)
            if not plain:
                raise ValueError("Telegram clients do not send empty messages")
            version = MessageVersion(text=plain, entities=tuple(parsed), raw=text)
            return self._post(version, reply_to=reply_to)

        return await self._double._run(run_now(post))

    async def send_photo(self, data: bytes, *, caption: str | None = None) -> ChatMessage:
        """Send a photo (PNG, JPEG, GIF or WebP bytes) with an optional caption."""

        def post() -> ChatMessage:
            sizes = _as_value_error(lambda: store_photo(self._double._world, self._state(), data))
            plain, parsed = format_text(caption or "", None)
            version = MessageVersion(caption=plain or None, caption_entities=tuple(parsed))
            return self._post(version, photo_files=sizes)

        return await self._double._run(run_now(post))

    async def send_document(
        self, data: bytes, filename: str, *, caption: str | None = None
    ) -> ChatMessage:
        """Send a file as a document with an optional caption."""

        def post() -> ChatMessage:
            stored = _as_value_error(
                lambda: store_document(self._double._world, self._state(), data, filename)
            )
            plain, parsed = format_text(caption or "", None)
            version = MessageVersion(caption=plain or None, caption_entities=tuple(parsed))
            return self._post(version, document_file=stored)

        return await self._double._run(run_now(post))

    async def edit(self, message: ChatMessage, text: str) -> ChatMessage:
        """Edit one of the user's own text messages (an ``edited_message`` update)."""

        def apply() -> ChatMessage:
            if message.sender_kind != "user" or message.chat_id != self.id:
                raise ValueError(f"{self!r} can only edit their own messages")
            plain, parsed = format_text(text, None)
            message.add_version(
                MessageVersion(text=plain, entities=tuple(parsed), raw=text, edit_date=now())
            )
            self._double._world.push_update(self._state(), "edited_message", message.to_api())
            return message

        return await self._double._run(run_now(apply))

    async def press(
        self,
        message: ChatMessage,
        data: str | None = None,
        *,
        text: str | None = None,
        timeout: float | None = 5.0,
    ) -> CallbackAnswer | None:
        """Press an inline button of a bot message (a ``callback_query`` update).

        Args:
            message: The bot message carrying the keyboard.
            data: The button's callback data; or give ``text``.
            text: The button's label.
            timeout: Seconds to wait for ``answerCallbackQuery``; ``None`` not to wait.

        Returns:
            The bot's answer, or ``None`` when not waiting.

        Raises:
            LookupError: No such button on the message as it is now, or it was deleted.
            ValueError: The button opens a URL or Web App instead of sending a callback.
            TimeoutError: The bot did not answer in time.
        """
        if (data is None) == (text is None):
            raise ValueError("give exactly one of data= or text=")

        def start() -> PendingCallback:
            if message.deleted:
                raise LookupError(f"{message!r} was deleted; its buttons cannot be pressed")
            buttons = message.buttons
            found = (
                message.button(text)
                if text is not None
                else next((b for b in buttons if b.callback_data == data), None)
            )
            if found is None:
                labels = [(b.text, b.value) for b in buttons]
                raise LookupError(f"no button with data {data!r} on {message!r}: {labels}")
            button = found
            if button.kind != "callback_data":
                raise ValueError(
                    f"button {button.text!r} is a {button.kind} button, not a callback"
                )
            state = self._state()
            pending = PendingCallback(
                query_id=str(secrets.randbits(63)),
                user=self.profile,
                message=message,
                data=button.callback_data,
            )
            state.callbacks[pending.query_id] = pending
            self._double._world.push_update(
                state,
                "callback_query",
                {
                    "id": pending.query_id,
                    "from": self.profile.to_api(),
                    "message": message.to_api(),
                    "chat_instance": message._chat.chat_instance,
                    "data": button.callback_data,
                },
            )
            return pending

        async def run() -> CallbackAnswer | None:
            pending = start()
            if timeout is None:
                return None
            label = data if data is not None else text
            return await self._double._wait(
                lambda: pending.answer,
                timeout,
                lambda: f"no answerCallbackQuery for the press of {label!r}",
            )

        return await self._double._run(run())

    def open_web_app(
        self, message: ChatMessage, text: str | None = None, *, auth_date: int | None = None
    ) -> str:
        """Tap a ``web_app`` button: the URL the client opens, launch parameters included.

        The fragment carries ``tgWebAppData``: ``initData`` for this user, signed with the
        bot's token exactly as Telegram signs it (see :mod:`doubles.telegram.webapp`).

        Args:
            message: The bot message carrying the keyboard.
            text: The button's label; omitted: the message's only Web App button.
            auth_date: Unix time Telegram signed at (default: now; older to test staleness).

        Raises:
            LookupError: No such button, or the message was deleted.
            ValueError: The button is not a Web App button.
        """
        if message.deleted:
            raise LookupError(f"{message!r} was deleted; its buttons cannot be pressed")
        if text is not None:
            button = message.button(text)
        else:
            apps = [b for b in message.buttons if b.kind == "web_app"]
            if len(apps) != 1:
                raise LookupError(f"{len(apps)} Web App buttons on {message!r}; give text=")
            button = apps[0]
        if button.web_app_url is None:
            raise ValueError(f"button {button.text!r} is a {button.kind} button, not a Web App")
        init_data = init_data_for(self.profile, self.bot, auth_date=auth_date)
        return launch_url(button.web_app_url, init_data)

    async def next_message(self, timeout: float = 5.0) -> ChatMessage:
        """Return the bot's next message in this chat that the test has not read yet.

        Messages are read in order; one the bot deleted meanwhile is still returned
        (check ``.deleted``).

        Raises:
            TimeoutError: None arrived in time; the error lists the bot's latest calls.
        """
        return await self._take(lambda _message: True, timeout, "new")

    async def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> ChatMessage:
        """Return the first unread bot message matching ``predicate``.

        Unread messages before it are skipped (marked read).

        Raises:
            TimeoutError: None matched in time.
        """
        return await self._take(predicate, timeout, "matching")

    async def _take(self, predicate: Predicate, timeout: float, kind: str) -> ChatMessage:
        def take() -> ChatMessage | None:
            for message in bot_messages_after(self._chat(), self._cursor):
                if predicate(message):
                    self._cursor = message.message_id
                    return message
            return None

        return await self._double._run(
            self._double._wait(take, timeout, lambda: f"no {kind} bot message to {self!r}")
        )

    async def wait_edited(
        self, message: ChatMessage, count: int = 1, timeout: float = 5.0
    ) -> ChatMessage:
        """Wait until ``message`` has been edited ``count`` times in all; return it.

        Counting all edits (not new ones) makes this immune to the edit landing first.
        """
        return await self._double._run(
            self._double._wait(
                lambda: message if len(message.edits) >= count else None,
                timeout,
                lambda: f"{message!r} not edited {count} time(s)",
            )
        )

    def _set_blocked(self, blocked: bool) -> None:
        world = self._double._world
        state = self._state()
        chat = world.private_chat(state, self.profile)
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        bot_user = state.identity.to_api()
        world.push_update(
            state,
            "my_chat_member",
            {
                "chat": chat.to_api(),
                "from": self.profile.to_api(),
                "date": now(),
                "old_chat_member": member_object(bot_user, ChannelMembership(old)),
                "new_chat_member": member_object(bot_user, ChannelMembership(new)),
            },
        )

    async def block(self) -> None:
        """Block the bot: its sends fail with 403 and it gets a ``my_chat_member`` update."""
        await self._double._run(run_now(lambda: self._set_blocked(True)))

    async def unblock(self) -> None:
        """Unblock the bot (a ``my_chat_member`` update back to ``member``)."""
        await self._double._run(run_now(lambda: self._set_blocked(False)))


def _as_value_error(fn: Callable[[], T]) -> T:
    """Run a Bot API helper for a simulated client, whose mistakes are the test's."""
    try:
        return fn()
    except ApiError as error:
        raise ValueError(error.description) from None
