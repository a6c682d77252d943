"""What the Telegram double remembers: bots, users, chats, messages, files and calls.

Everything here is mutated only on the double's own event loop thread. Tests read the
public objects (:class:`ChatMessage`, :class:`ApiCall`, ...) from their own thread; each
message keeps its versions in an append-only list so a reader never sees half an edit.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .media import StoredFile

# Update types a bot gets when it did not choose any (Bot API: "all update types except
# chat_member, message_reaction, and message_reaction_count").
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Rights of a channel administrator, with what a bot added by the owner gets by default.
CHANNEL_ADMIN_RIGHTS: dict[str, bool] = {
    "can_manage_chat": True,
    "can_post_messages": True,
    "can_edit_messages": True,
    "can_delete_messages": True,
    "can_invite_users": True,
    "can_change_info": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_manage_video_chats": True,
    "can_post_stories": True,
    "can_edit_stories": True,
    "can_delete_stories": True,
    "can_send_welcome_messages": False,
    "can_manage_direct_messages": False,
}

INLINE_BUTTON_KINDS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def now() -> int:
    """Return the current Unix time, as Telegram's ``date`` fields carry it."""
    return int(time.time())


@dataclass(frozen=True)
class BotIdentity:
    """One bot registered with the double.

    Attributes:
        token: The Bot API token, ``<id>:<secret>``.
        id: The bot's user id (the token's numeric part).
        username: The bot's username, without ``@``.
        first_name: The bot's display name.
    """

    token: str
    id: int
    username: str
    first_name: str

    def to_api(self) -> dict[str, Any]:
        """Return the bot as a ``User`` object, as it appears in ``from`` fields."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }


@dataclass
class UserProfile:
    """A simulated Telegram user account.

    Attributes:
        id: User id, also the id of the user's private chat with a bot.
        first_name: First name.
        last_name: Optional last name.
        username: Optional username, without ``@``.
        language_code: IETF language tag of the user's client.
        is_premium: Whether the user has Telegram Premium.
    """

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"
    is_premium: bool = False

    def to_api(self) -> dict[str, Any]:
        """Return the ``User`` object."""
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        if self.is_premium:
            user["is_premium"] = True
        return user


@dataclass(frozen=True)
class Button:
    """One inline keyboard button.

    Attributes:
        text: Label.
        kind: The button's action field: ``callback_data``, ``url``, ``web_app``, ...
        value: The action's value (callback data, URL, Web App URL, query text...).
        row: Zero-based row.
        column: Zero-based position in the row.
    """

    text: str
    kind: str
    value: str | None
    row: int
    column: int

    @property
    def callback_data(self) -> str | None:
        """Return the callback data, if this is a callback button."""
        return self.value if self.kind == "callback_data" else None

    @property
    def url(self) -> str | None:
        """Return the URL, if this is a URL button."""
        return self.value if self.kind == "url" else None

    @property
    def web_app_url(self) -> str | None:
        """Return the Web App URL, if this button opens a Web App."""
        return self.value if self.kind == "web_app" else None


def parse_inline_keyboard(markup: dict[str, Any] | None) -> list[list[Button]]:
    """Return the rows of an ``InlineKeyboardMarkup`` as :class:`Button` objects."""
    rows: list[list[Button]] = []
    for row_index, row in enumerate((markup or {}).get("inline_keyboard", [])):
        buttons = []
        for column, raw in enumerate(row):
            kind = next((name for name in INLINE_BUTTON_KINDS if name in raw), "")
            value = raw.get(kind)
            if isinstance(value, dict):
                value = value.get("url", value.get("text"))
            buttons.append(
                Button(
                    text=raw.get("text", ""),
                    kind=kind,
                    value=value if isinstance(value, str) else None,
                    row=row_index,
                    column=column,
                )
            )
        rows.append(buttons)
    return rows


@dataclass(frozen=True)
class MessageVersion:
    """The content of a message at one point in time.

    Attributes:
        text: Plain text (markup already parsed), for text messages.
        entities: Entities of ``text``.
        caption: Plain caption, for media messages.
        caption_entities: Entities of ``caption``.
        reply_markup: The inline keyboard, or ``None``.
        raw: The text or caption exactly as the bot sent it, markup included.
        parse_mode: The ``parse_mode`` it was sent with.
        edit_date: When this version was made by an edit, else ``None``.
        media: ``file_unique_id`` of the photo or document shown (media messages).
    """

    text: str | None = None
    entities: tuple[dict[str, Any], ...] = ()
    caption: str | None = None
    caption_entities: tuple[dict[str, Any], ...] = ()
    reply_markup: dict[str, Any] | None = None
    raw: str | None = None
    parse_mode: str | None = None
    edit_date: int | None = None
    media: str | None = None

    @property
    def keyboard(self) -> list[list[tuple[str, str | None]]]:
        """Return the inline keyboard as rows of ``(text, callback data / URL / Web App URL)``."""
        return [
            [(button.text, button.value) for button in row]
            for row in parse_inline_keyboard(self.reply_markup)
        ]

    def same_content(self, other: MessageVersion) -> bool:
        """Tell whether an edit to ``other`` would change nothing Telegram compares."""
        return (
            self.text == other.text
            and list(self.entities) == list(other.entities)
            and self.caption == other.caption
            and list(self.caption_entities) == list(other.caption_entities)
            and self.reply_markup == other.reply_markup
            and self.media == other.media
        )


class ChatMessage:
    """A message in a simulated chat; the object stays live as the message is edited or deleted.

    Attributes:
        message_id: Identifier, unique within the chat.
        chat_id: The chat's id.
        chat_type: ``private`` or ``channel``.
        date: Unix time it was sent.
        sender_kind: ``bot``, ``user`` or ``channel`` (a post signed by the channel).
        sender: The ``User`` object of the sender, ``None`` for channel posts.
        reply_to: The message this one replies to.
        protected: Whether it was sent with ``protect_content``.
        photo_files: The stored photo sizes, smallest first.
        document_file: The stored document.
        deleted: Whether it was deleted.
        deleted_by: ``bot`` or ``user``, when deleted.
    """

    def __init__(
        self,
        *,
        chat: ChatState,
        message_id: int,
        sender_kind: str,
        sender: dict[str, Any] | None,
        version: MessageVersion,
        reply_to: ChatMessage | None = None,
        protected: bool = False,
        photo_files: list[StoredFile] | None = None,
        document_file: StoredFile | None = None,
    ) -> None:
        self._chat = chat
        self.message_id = message_id
        self.chat_id = chat.id
        self.chat_type = chat.type
        self.date = now()
        self.sender_kind = sender_kind
        self.sender = sender
        self.reply_to = reply_to
        self.protected = protected
        self.photo_files = photo_files or []
        self.document_file = document_file
        self._versions: list[MessageVersion] = [version]
        self.deleted = False
        self.deleted_by: str | None = None

    def __repr__(self) -> str:
        content = self.text if self.text is not None else self.caption
        state = " deleted" if self.deleted else ""
        return (
            f"<ChatMessage {self.chat_id}/{self.message_id} from {self.sender_kind}{state}: "
            f"{content!r}>"
        )

    @property
    def current(self) -> MessageVersion:
        """Return the latest version of the content."""
        return self._versions[-1]

    @property
    def versions(self) -> list[MessageVersion]:
        """Return every version, the original first."""
        return list(self._versions)

    @property
    def edits(self) -> list[MessageVersion]:
        """Return the versions made by edits, oldest first."""
        return self._versions[1:]

    @property
    def from_bot(self) -> bool:
        """Tell whether a bot sent this message (posts a bot made in a channel included)."""
        return self.sender_kind == "bot" or (
            self.sender_kind == "channel" and self.sender is not None
        )

    @property
    def text(self) -> str | None:
        """Return the current plain text (markup parsed), or ``None`` for media."""
        return self.current.text

    @property
    def entities(self) -> list[dict[str, Any]]:
        """Return the current text entities."""
        return list(self.current.entities)

    @property
    def raw_text(self) -> str | None:
        """Return the current text or caption exactly as sent, markup included."""
        return self.current.raw

    @property
    def caption(self) -> str | None:
        """Return the current caption."""
        return self.current.caption

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        """Return the current inline keyboard markup."""
        return self.current.reply_markup

    @property
    def keyboard(self) -> list[list[tuple[str, str | None]]]:
        """Return the inline keyboard as rows of ``(text, callback data / URL / Web App URL)``."""
        return self.current.keyboard

    @property
    def buttons(self) -> list[Button]:
        """Return every inline button, row by row."""
        return [button for row in parse_inline_keyboard(self.reply_markup) for button in row]

    def button(self, text: str) -> Button:
        """Return the inline button labelled ``text``.

        Raises:
            LookupError: No such button; the message lists the ones there are.
        """
        for button in self.buttons:
            if button.text == text:
                return button
        labels = [button.text for button in self.buttons]
        raise LookupError(f"no button {text!r} on {self!r}; buttons: {labels}")

    @property
    def edit_date(self) -> int | None:
        """Return when the message was last edited."""
        return self.current.edit_date

    @property
    def command(self) -> str | None:
        """Return the leading bot command (``/start``), if the text starts with one."""
        for entity in self.entities:
            if entity["type"] == "bot_command" and entity["offset"] == 0 and self.text:
                return self.text[: entity["length"]].split("@")[0]
        return None

    @property
    def photo(self) -> list[dict[str, Any]]:
        """Return the ``PhotoSize`` objects, smallest first."""
        return [stored.photo_size() for stored in self.photo_files]

    @property
    def photo_bytes(self) -> bytes | None:
        """Return the bytes of the largest photo size (the upload as sent)."""
        return self.photo_files[-1].data if self.photo_files else None

    @property
    def document(self) -> dict[str, Any] | None:
        """Return the ``Document`` object."""
        return self.document_file.document() if self.document_file else None

    @property
    def document_bytes(self) -> bytes | None:
        """Return the document's bytes."""
        return self.document_file.data if self.document_file else None

    @property
    def document_name(self) -> str | None:
        """Return the document's filename."""
        return self.document_file.filename if self.document_file else None

    def add_version(self, version: MessageVersion) -> None:
        """Record an edit (double internals)."""
        self._versions.append(version)

    def to_api(self, *, with_reply: bool = True) -> dict[str, Any]:
        """Return the Bot API ``Message`` object."""
        version = self.current
        message: dict[str, Any] = {"message_id": self.message_id}
        if self.sender_kind == "channel":
            message["sender_chat"] = self._chat.to_api()
        elif self.sender is not None:
            message["from"] = self.sender
        message["chat"] = self._chat.to_api()
        message["date"] = self.date
        if version.edit_date is not None:
            message["edit_date"] = version.edit_date
        if self.reply_to is not None and with_reply:
            message["reply_to_message"] = self.reply_to.to_api(with_reply=False)
        if self.protected:
            message["has_protected_content"] = True
        if version.text is not None:
            message["text"] = version.text
            if version.entities:
                message["entities"] = list(version.entities)
        if self.photo_files:
            message["photo"] = self.photo
        if self.document_file is not None:
            message["document"] = self.document
        if version.caption:
            message["caption"] = version.caption
            if version.caption_entities:
                message["caption_entities"] = list(version.caption_entities)
        if version.reply_markup is not None:
            message["reply_markup"] = version.reply_markup
        return message


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


@dataclass
class CallbackAnswer:
    """What the bot answered to a button press (``answerCallbackQuery``).

    Attributes:
        query_id: The callback query's id.
        data: The pressed button's callback data.
        text: Notification text, if any.
        show_alert: Whether it is an alert rather than a toast.
        url: URL to open, if any.
        cache_time: Seconds the client may cache the answer.
    """

    query_id: str
    data: str | None
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0


@dataclass
class PendingCallback:
    """A callback query sent to a bot (internals)."""

    query_id: str
    user: UserProfile
    message: ChatMessage
    data: str | None
    created: float = field(default_factory=time.monotonic)
    answer: CallbackAnswer | None = None


@dataclass
class ApiCall:
    """One request a client made to the double.

    Attributes:
        seq: Order of arrival, from 1.
        method: Canonical method name (``sendMessage``), or the path's last part if unknown.
        params: Parameters, JSON fields decoded and numeric ids as ``int``; uploads as
            :class:`~doubles.telegram.media.Upload`.
        bot_id: The bot's id when the token is registered, else ``None``.
        status: HTTP status answered (``0`` when the connection was dropped on purpose).
        response: The JSON body answered, or ``None`` for a non-JSON fault.
        via: ``http``, or ``webhook_reply`` for a method returned in a webhook response.
        at: ``time.monotonic()`` when it arrived.
    """

    seq: int
    method: str
    params: dict[str, Any]
    bot_id: int | None
    status: int = 0
    response: dict[str, Any] | None = None
    via: str = "http"
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """Tell whether the call succeeded."""
        return bool(self.response and self.response.get("ok"))

    @property
    def result(self) -> Any:
        """Return the ``result`` of a successful call."""
        return (self.response or {}).get("result")

    @property
    def description(self) -> str | None:
        """Return the error ``description`` of a failed call."""
        return (self.response or {}).get("description")

    def __repr__(self) -> str:
        outcome = "ok" if self.ok else f"{self.status} {self.description or ''}".strip()
        return f"<ApiCall #{self.seq} {self.method} -> {outcome}>"


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to a bot's webhook.

    Attributes:
        update_id: The update delivered.
        url: Where it was posted.
        headers: Headers sent (the secret token header included).
        status: HTTP status the webhook answered, ``None`` if unreachable.
        error: Telegram-style ``last_error_message`` when the attempt failed.
        reply_method: Method the webhook answered with, if any.
    """

    update_id: int
    url: str
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None
    reply_method: str | None = None


@dataclass
class WebhookConfig:
    """A bot's webhook (internals)."""

    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    has_custom_certificate: bool
    last_error_date: int | None = None
    last_error_message: str | None = None
    task: asyncio.Task[None] | None = None

    def same_as(self, other: WebhookConfig) -> bool:
        """Tell whether setting ``other`` would change nothing."""
        return (self.url, self.secret_token, self.max_connections, self.ip_address) == (
            other.url,
            other.secret_token,
            other.max_connections,
            other.ip_address,
        )


@dataclass
class PollTicket:
    """One waiting ``getUpdates`` request (internals).

    Attributes:
        terminated: The 409 description that ended it early, if any.
    """

    terminated: str | None = None


class BotState:
    """Everything the double keeps per bot (internals)."""

    def __init__(self, identity: BotIdentity) -> None:
        self.identity = identity
        self.updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(100_000_000 + secrets.randbelow(100_000_000))
        self.allowed_updates: frozenset[str] | None = None
        self.webhook: WebhookConfig | None = None
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.default_menu_button: dict[str, Any] | None = None
        self.callbacks: dict[str, PendingCallback] = {}
        self.active_poll: PollTicket | None = None
        self.profile: dict[str, str] = {}

    def accepts(self, kind: str) -> bool:
        """Tell whether updates of ``kind`` pass the bot's ``allowed_updates``."""
        if self.allowed_updates is None:
            return kind not in DEFAULT_EXCLUDED_UPDATES
        return kind in self.allowed_updates

    def next_update_id(self) -> int:
        """Return the next update id."""
        return next(self._update_ids)


class World:
    """All simulated Telegram state of one double (internals).

    Args:
        notify: Called after every change, to wake whoever waits for one.
    """

    def __init__(self, notify: Callable[[], None]) -> None:
        self.notify = notify
        self.bots: dict[str, BotState] = {}
        self.bots_by_id: dict[int, BotState] = {}
        self.users: dict[int, UserProfile] = {}
        self.private_chats: dict[tuple[int, int], PrivateChat] = {}
        self.channels: dict[int, Channel] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.photo_sets: dict[str, list[StoredFile]] = {}
        self.sent: list[ChatMessage] = []
        self.calls: list[ApiCall] = []
        self.deliveries: list[WebhookDelivery] = []
        self.dropped_updates: list[dict[str, Any]] = []
        self.file_counter = itertools.count()
        self.call_counter = itertools.count(1)

    def private_chat(self, bot: BotState, user: UserProfile) -> PrivateChat:
        """Return (creating it if needed) the private chat of ``bot`` and ``user``."""
        key = (bot.identity.id, user.id)
        chat = self.private_chats.get(key)
        if chat is None:
            chat = self.private_chats[key] = PrivateChat(bot, user)
        return chat

    def push_update(self, bot: BotState, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for ``bot`` unless its ``allowed_updates`` filter it out.

        Returns:
            The update, with its ``update_id``.
        """
        update = {"update_id": bot.next_update_id(), kind: payload}
        if bot.accepts(kind):
            bot.updates.append(update)
        else:
            self.dropped_updates.append(update)
        self.notify()
        return update

    def store_file(self, stored: StoredFile) -> StoredFile:
        """Keep a file so ``getFile`` and downloads find it."""
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored
