"""Messages and callbacks: ``sendMessage``, the ``editMessage*`` methods, deleting
messages and ``answerCallbackQuery``."""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import errors
from ..errors import bad_request
from ..state import ChatMessage, MessageVersion, now
from ..state_chats import Channel, ChatState
from ..state_world import CallbackAnswer
from .base import Context, method
from .chats import resolve_chat
from .content import (
    apply_chat_markup,
    check_markup_for_chat,
    own_message,
    post_bot_message,
    read_caption,
    read_markup,
    read_message_text,
    reply_target,
)


@method("sendMessage")
async def send_message(ctx: Context) -> Any:
    """``sendMessage``: text with ``parse_mode``/``entities``, a reply markup, a reply target."""
    if ctx.params.get("chat_id") in (None, ""):
        raise bad_request(errors.CHAT_ID_EMPTY)
    plain, entities = read_message_text(ctx)
    inline, other = read_markup(ctx)
    chat = resolve_chat(ctx, "send")
    check_markup_for_chat(inline, chat)
    reply_to = reply_target(ctx, chat)
    version = MessageVersion(
        text=plain,
        entities=tuple(entities),
        reply_markup=inline,
        raw=ctx.params.string("text"),
        parse_mode=ctx.params.string("parse_mode"),
    )
    message = post_bot_message(ctx, chat, version, reply_to=reply_to)
    apply_chat_markup(chat, other)
    return message.to_api()


def message_to_edit(ctx: Context) -> ChatMessage:
    """Return the bot's own message named by ``chat_id`` and ``message_id``, to edit."""
    if ctx.params.get("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = resolve_chat(ctx, "edit")
    message_id = ctx.params.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = chat.find(message_id)
    if message is None:
        raise bad_request("message to edit not found")
    if not own_message(ctx, message):
        raise bad_request("message can't be edited")
    return message


def _apply_edit(ctx: Context, message: ChatMessage, version: MessageVersion) -> Any:
    if message.current.same_content(version):
        raise bad_request(errors.NOT_MODIFIED)
    message.add_version(version)
    ctx.world.notify()
    return message.to_api()


@method("editMessageText")
async def edit_message_text(ctx: Context) -> Any:
    """``editMessageText``: new text; a missing ``reply_markup`` removes the keyboard."""
    plain, entities = read_message_text(ctx)
    inline, _ = read_markup(ctx)
    message = message_to_edit(ctx)
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    version = dataclasses.replace(
        message.current,
        text=plain,
        entities=tuple(entities),
        reply_markup=inline,
        raw=ctx.params.string("text"),
        parse_mode=ctx.params.string("parse_mode"),
        edit_date=now(),
    )
    return _apply_edit(ctx, message, version)


@method("editMessageCaption")
async def edit_message_caption(ctx: Context) -> Any:
    """``editMessageCaption``: new caption of a photo or document message."""
    caption, caption_entities = read_caption(ctx)
    inline, _ = read_markup(ctx)
    message = message_to_edit(ctx)
    if not message.photo_files and message.document_file is None:
        raise bad_request("there is no caption in the message to edit")
    version = dataclasses.replace(
        message.current,
        caption=caption or None,
        caption_entities=tuple(caption_entities),
        reply_markup=inline,
        raw=ctx.params.string("caption"),
        parse_mode=ctx.params.string("parse_mode"),
        edit_date=now(),
    )
    return _apply_edit(ctx, message, version)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(ctx: Context) -> Any:
    """``editMessageReplyMarkup``: replace (or, without ``reply_markup``, remove) the keyboard."""
    inline, _ = read_markup(ctx)
    message = message_to_edit(ctx)
    version = dataclasses.replace(message.current, reply_markup=inline, edit_date=now())
    return _apply_edit(ctx, message, version)


def _delete(ctx: Context, chat: ChatState, message_id: int | None) -> bool:
    message = chat.find(message_id)
    if message is None:
        return False
    if isinstance(chat, Channel):
        rights = chat.membership(ctx.bot.identity.id).rights
        own_post = own_message(ctx, message) and rights.get("can_post_messages")
        if not (rights.get("can_delete_messages") or own_post):
            raise bad_request("message can't be deleted")
    message.deleted = True
    message.deleted_by = "bot"
    ctx.world.notify()
    return True


@method("deleteMessage")
async def delete_message(ctx: Context) -> Any:
    """``deleteMessage``: the bot's own messages and, in private chats, the user's too."""
    chat = resolve_chat(ctx, "delete")
    message_id = ctx.params.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    if not _delete(ctx, chat, message_id):
        raise bad_request("message to delete not found")
    return True


@method("deleteMessages")
async def delete_messages(ctx: Context) -> Any:
    """``deleteMessages``: up to 100 messages; missing ones are skipped."""
    chat = resolve_chat(ctx, "delete")
    message_ids = ctx.params.json("message_ids", "message identifiers")
    if not isinstance(message_ids, list) or not 1 <= len(message_ids) <= 100:
        raise bad_request("message identifiers are not specified")
    deleted = [_delete(ctx, chat, mid) for mid in message_ids if isinstance(mid, int)]
    if not any(deleted):
        raise bad_request("message to delete not found")
    return True


@method("answerCallbackQuery")
async def answer_callback_query(ctx: Context) -> Any:
    """``answerCallbackQuery``: once per query; a second answer or unknown id is refused."""
    query_id = ctx.params.string("callback_query_id") or ""
    pending = ctx.bot.callbacks.get(query_id)
    if pending is None or pending.answer is not None:
        raise bad_request(errors.QUERY_TOO_OLD)
    pending.answer = CallbackAnswer(
        query_id=query_id,
        data=pending.data,
        text=ctx.params.string("text"),
        show_alert=ctx.params.flag("show_alert"),
        url=ctx.params.string("url"),
        cache_time=ctx.params.integer("cache_time") or 0,
    )
    ctx.world.notify()
    return True
