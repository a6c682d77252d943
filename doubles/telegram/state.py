"""What the Telegram double remembers: bots' and users' identities, and messages.

Chats live in :mod:`.state_chats`; bots' updates, webhooks, callback queries, the calls
received and the :class:`~doubles.telegram.state_world.World` holding it all live in
:mod:`.state_world`.

Everything here is mutated only on the double's own event loop thread. Tests read the
public objects (:class:`ChatMessage`, :class:`Button`, ...) from their own thread; each
message keeps its versions in an append-only list so a reader never sees half an edit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .media import StoredFile
    from .state_chats import ChatState

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
