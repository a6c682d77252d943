"""What a sent or edited message is made of: text and caption with their entities, reply
markup, the reply target, and storing the bot's message."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..errors import bad_request
from ..formatting import checked_link, format_text
from ..media import StoredFile
from ..state import INLINE_BUTTON_KINDS, ChatMessage, MessageVersion
from ..state_chats import Channel, ChatState, PrivateChat
from .base import MAX_CAPTION_LENGTH, MAX_TEXT_LENGTH, Context


def _text(ctx: Context, name: str, entities_name: str) -> tuple[str, list[dict[str, Any]]]:
    text = ctx.params.string(name) or ""
    entities = ctx.params.json(entities_name, "entities")
    return format_text(text, ctx.params.string("parse_mode"), entities)


def read_message_text(ctx: Context) -> tuple[str, list[dict[str, Any]]]:
    """Return the ``text`` parameter as plain text and entities, checked like Telegram."""
    if not ctx.params.string("text"):
        raise bad_request(errors.MESSAGE_TEXT_EMPTY)
    plain, entities = _text(ctx, "text", "entities")
    if not plain:
        raise bad_request(errors.MESSAGE_TEXT_EMPTY)
    if len(plain) > MAX_TEXT_LENGTH:
        raise bad_request(errors.MESSAGE_TOO_LONG)
    return plain, entities


def read_caption(ctx: Context) -> tuple[str, list[dict[str, Any]]]:
    """Return the ``caption`` parameter as plain text and entities (at most 1024 chars)."""
    plain, entities = _text(ctx, "caption", "caption_entities")
    if len(plain) > MAX_CAPTION_LENGTH:
        raise bad_request(errors.CAPTION_TOO_LONG)
    return plain, entities


def read_markup(ctx: Context) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Parse ``reply_markup``.

    Returns:
        ``(inline keyboard, other markup)``: only an inline keyboard is attached to the
        message; reply keyboards, their removal and force-reply act on the chat.
    """
    markup = ctx.params.json("reply_markup", "reply keyboard markup")
    if markup is None:
        return None, None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        return _inline_keyboard(markup), None
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        return None, markup
    if markup.get("remove_keyboard") or markup.get("force_reply"):
        return None, markup
    raise bad_request("can't parse reply keyboard markup JSON object")


def _inline_keyboard(markup: dict[str, Any]) -> dict[str, Any]:
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "inline_keyboard" of the '
            "InlineKeyboardMarkup must be an Array of Arrays"
        )
    clean_rows = []
    for row in rows:
        clean_row = []
        for button in row:
            if not isinstance(button, dict):
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            if not isinstance(button.get("text"), str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            kind = next((name for name in INLINE_BUTTON_KINDS if name in button), None)
            if kind is None:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            _check_button(kind, button[kind])
            clean_row.append({key: value for key, value in button.items() if value is not None})
        clean_rows.append(clean_row)
    return {"inline_keyboard": clean_rows}


def _check_button(kind: str, value: Any) -> None:
    if kind == "callback_data":
        if not isinstance(value, str) or not 1 <= len(value.encode()) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    elif kind == "url":
        if not isinstance(value, str) or checked_link(value) is None:
            raise bad_request(f"inline keyboard button URL '{value}' is invalid: Wrong HTTP URL")
    elif kind == "web_app":
        url = value.get("url") if isinstance(value, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme != "https":
            raise bad_request(
                f"inline keyboard button Web App URL '{url}' is invalid: "
                "Only HTTPS links are allowed"
            )


def check_markup_for_chat(inline: dict[str, Any] | None, chat: ChatState) -> None:
    """Refuse Web App buttons outside private chats (``BUTTON_TYPE_INVALID``)."""
    if inline is None or isinstance(chat, PrivateChat):
        return
    for row in inline["inline_keyboard"]:
        for button in row:
            if "web_app" in button:
                raise bad_request("BUTTON_TYPE_INVALID")


def apply_chat_markup(chat: ChatState, other: dict[str, Any] | None) -> None:
    """Apply a reply keyboard (or its removal) to a private chat."""
    if not isinstance(chat, PrivateChat) or other is None:
        return
    if "keyboard" in other:
        chat.reply_keyboard = other
    elif other.get("remove_keyboard"):
        chat.reply_keyboard = None


def reply_target(ctx: Context, chat: ChatState) -> ChatMessage | None:
    """Return the message named by ``reply_parameters``/``reply_to_message_id``, if any."""
    parameters = ctx.params.json("reply_parameters", "reply parameters")
    if isinstance(parameters, dict):
        message_id = parameters.get("message_id")
        allow = bool(parameters.get("allow_sending_without_reply"))
    else:
        message_id = ctx.params.integer("reply_to_message_id")
        allow = ctx.params.flag("allow_sending_without_reply")
    if message_id is None:
        return None
    target = chat.find(message_id if isinstance(message_id, int) else None)
    if target is None and not allow:
        raise bad_request("message to be replied not found")
    return target


def post_bot_message(
    ctx: Context,
    chat: ChatState,
    version: MessageVersion,
    *,
    reply_to: ChatMessage | None = None,
    photo_files: list[StoredFile] | None = None,
    document_file: StoredFile | None = None,
) -> ChatMessage:
    """Store a message the bot sends and return it."""
    sender_kind = "channel" if isinstance(chat, Channel) else "bot"
    message = ChatMessage(
        chat=chat,
        message_id=chat.next_message_id(),
        sender_kind=sender_kind,
        sender=ctx.bot.identity.to_api(),
        version=version,
        reply_to=reply_to,
        protected=ctx.params.flag("protect_content"),
        photo_files=photo_files,
        document_file=document_file,
    )
    chat.messages[message.message_id] = message
    ctx.world.sent.append(message)
    ctx.world.notify()
    return message


def own_message(ctx: Context, message: ChatMessage) -> bool:
    """Tell whether ``message`` was sent by the calling bot."""
    return message.from_bot and (message.sender or {}).get("id") == ctx.bot.identity.id
