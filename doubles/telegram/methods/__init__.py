"""The Bot API methods the double implements, with Telegram's validation and errors.

One module per family of the Bot API:

* :mod:`.base`: typed parameters, the call context and the handler registry.
* :mod:`.session`: ``getMe``, ``logOut``, ``close``, ``getUpdates`` and the webhook methods.
* :mod:`.content`: text, captions, reply markup and storing what the bot sends.
* :mod:`.messages`: ``sendMessage``, edits, deletions and ``answerCallbackQuery``.
* :mod:`.files` and :mod:`.media_edits`: photos, documents, ``getFile`` and
  ``editMessageMedia``.
* :mod:`.chats`: chat resolution, ``getChat*`` and ``sendChatAction``.
* :mod:`.settings`: commands, the chat menu button (Web Apps) and profile texts.

Importing the package registers every handler in :data:`HANDLERS`.
"""

from __future__ import annotations

from . import chats, files, media_edits, messages, session, settings  # register the handlers
from .base import (
    HANDLERS,
    LOOPBACK_HOSTS,
    MAX_CAPTION_LENGTH,
    MAX_DOWNLOAD_BYTES,
    MAX_PHOTO_BYTES,
    MAX_TEXT_LENGTH,
    MAX_UPLOAD_BYTES,
    Answer,
    Context,
    Handler,
    Host,
    InvalidJson,
    Params,
    known_method_names,
    method,
    normalize_params,
)
from .chats import chat_full_info, member_object, resolve_chat
from .content import post_bot_message, read_markup
from .files import store_document, store_photo, store_upload

__all__ = [
    "HANDLERS",
    "LOOPBACK_HOSTS",
    "MAX_CAPTION_LENGTH",
    "MAX_DOWNLOAD_BYTES",
    "MAX_PHOTO_BYTES",
    "MAX_TEXT_LENGTH",
    "MAX_UPLOAD_BYTES",
    "Answer",
    "Context",
    "Handler",
    "Host",
    "InvalidJson",
    "Params",
    "chat_full_info",
    "chats",
    "files",
    "known_method_names",
    "media_edits",
    "member_object",
    "messages",
    "method",
    "normalize_params",
    "post_bot_message",
    "read_markup",
    "resolve_chat",
    "session",
    "settings",
    "store_document",
    "store_photo",
    "store_upload",
]
