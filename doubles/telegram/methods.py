"""The Bot API methods the double implements, with Telegram's validation and errors."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import errors
from .errors import ApiError, bad_request, forbidden
from .formatting import checked_link, format_text
from .media import StoredFile, Upload, guess_mime_type, image_info, new_file_ids, thumbnails
from .state import (
    INLINE_BUTTON_KINDS,
    BotState,
    CallbackAnswer,
    Channel,
    ChannelMembership,
    ChatMessage,
    ChatState,
    MessageVersion,
    PollTicket,
    PrivateChat,
    UserProfile,
    WebhookConfig,
    World,
    now,
)

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "from_chat_id",
        "message_thread_id",
        "max_connections",
        "reply_to_message_id",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "disable_web_page_preview",
        "has_spoiler",
        "show_caption_above_media",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "allow_paid_broadcast",
    }
)
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "allowed_updates",
        "menu_button",
        "reply_parameters",
        "link_preview_options",
        "media",
        "message_ids",
    }
)


@dataclass(frozen=True)
class InvalidJson:
    """A JSON-typed parameter whose text does not parse.

    Attributes:
        raw: The text as received.
    """

    raw: str


def normalize_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode form values the way the Bot API reads them.

    Numeric ids become ``int``, flags ``bool`` and JSON-typed fields are decoded (or kept
    as :class:`InvalidJson`). Values already typed (a JSON request body) stay as they are.
    """
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if name in _INT_FIELDS and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
            elif name in _BOOL_FIELDS:
                value = value.strip().lower() in {"true", "1"}
            elif name in _JSON_FIELDS:
                try:
                    value = json.loads(value)
                except ValueError:
                    value = InvalidJson(value)
        params[name] = value
    return params


class Params:
    """Typed access to one call's parameters.

    Args:
        values: Normalised parameters (see :func:`normalize_params`).
        uploads: File parts of a multipart request, by part name.
    """

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def get(self, name: str) -> Any:
        """Return the parameter as received (normalised), or ``None``."""
        return self.values.get(name)

    def string(self, name: str) -> str | None:
        """Return the parameter as text; numbers are accepted too."""
        value = self.values.get(name)
        if value is None or isinstance(value, (Upload, InvalidJson, dict, list)):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def integer(self, name: str) -> int | None:
        """Return the parameter as an integer, or ``None`` when absent or not a number."""
        value = self.values.get(name)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        return None

    def flag(self, name: str) -> bool:
        """Return the parameter as a flag (absent means ``False``)."""
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in {"true", "1"}
        return bool(value)

    def json(self, name: str, what: str) -> Any:
        """Return a JSON-typed parameter, decoded.

        Raises:
            ApiError: ``can't parse <what> JSON object`` for unparsable text.
        """
        value = self.values.get(name)
        if isinstance(value, InvalidJson):
            raise bad_request(f"can't parse {what} JSON object")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {what} JSON object") from None
        return value

    def media(self, name: str) -> Upload | str | None:
        """Return an ``InputFile`` parameter: an upload, or a ``file_id``/URL string.

        ``attach://<part>`` references are resolved to the named multipart part.
        """
        value = self.values.get(name)
        if isinstance(value, Upload):
            return value
        if isinstance(value, str) and value.startswith("attach://"):
            return self.uploads.get(value.removeprefix("attach://"))
        if isinstance(value, str) and value:
            return value
        return None


@dataclass
class Answer:
    """A successful result with the optional ``description`` Telegram adds to it."""

    result: Any
    description: str | None = None


class Host(Protocol):
    """What methods need from the running double."""

    def start_webhook(self, bot: BotState) -> None:
        """Start delivering ``bot``'s updates to its webhook."""

    def stop_webhook(self, bot: BotState) -> None:
        """Stop delivering to ``bot``'s webhook."""

    async def wait_change(self, timeout: float) -> None:
        """Wait until something changes or ``timeout`` seconds pass."""

    def check_outage(self) -> None:
        """Raise :class:`~doubles.telegram.errors.OutageError` while the API is down."""

    async def fetch(self, url: str) -> bytes:
        """Download ``url`` for a method given a file by URL."""


@dataclass
class Context:
    """One method call being served."""

    world: World
    bot: BotState
    params: Params
    host: Host


Handler = Callable[[Context], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for the Bot API method ``name``."""

    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


def known_method_names() -> dict[str, str]:
    """Return every Bot API method name aiogram knows, by lower-case name.

    Used to tell a real method the double does not implement from an unknown one.
    """
    from aiogram import methods as aiogram_methods

    names = {
        getattr(cls, "__api_method__", None)
        for cls in vars(aiogram_methods).values()
        if isinstance(cls, type)
    }
    known = {name.lower(): name for name in names if isinstance(name, str)}
    known.update({name.lower(): name for name in HANDLERS})
    return known


# --- chats ---------------------------------------------------------------------------------


def resolve_chat(ctx: Context, purpose: str) -> ChatState:
    """Find the chat named by ``chat_id`` and check the bot may act there.

    Args:
        ctx: The call.
        purpose: ``send``, ``edit``, ``delete`` or ``read``.

    Raises:
        ApiError: ``chat not found``, ``bot can't initiate conversation with a user``,
            ``bot was blocked by the user``, ``bot is not a member of the channel chat``,
            ``need administrator rights in the channel chat``...
    """
    raw = ctx.params.get("chat_id")
    if raw is None or raw == "":
        raise bad_request(errors.CHAT_ID_EMPTY)
    world, bot = ctx.world, ctx.bot
    if isinstance(raw, str) and raw.startswith("@"):
        wanted = raw[1:].lower()
        chat: ChatState | None = next(
            (c for c in world.channels.values() if (c.username or "").lower() == wanted), None
        )
        if chat is None:
            raise bad_request(errors.CHAT_NOT_FOUND)
    else:
        chat_id = ctx.params.integer("chat_id")
        if chat_id is None:
            raise bad_request(errors.CHAT_NOT_FOUND)
        if chat_id > 0:
            return _private_chat(ctx, chat_id, purpose)
        chat = world.channels.get(chat_id)
        if chat is None:
            raise bad_request(errors.CHAT_NOT_FOUND)
    assert isinstance(chat, Channel)
    membership = chat.membership(bot.identity.id)
    if purpose == "read":
        if membership.status != "administrator" and not chat.username:
            raise bad_request(errors.CHAT_NOT_FOUND)
        return chat
    if membership.status == "kicked":
        raise forbidden("bot was kicked from the channel chat")
    if membership.status != "administrator":
        raise forbidden("bot is not a member of the channel chat")
    if purpose == "send" and not membership.rights.get("can_post_messages"):
        raise bad_request("need administrator rights in the channel chat")
    return chat


def _private_chat(ctx: Context, user_id: int, purpose: str) -> PrivateChat:
    user = ctx.world.users.get(user_id)
    chat = ctx.world.private_chats.get((ctx.bot.identity.id, user_id))
    if user is None:
        raise bad_request(errors.CHAT_NOT_FOUND)
    if chat is None or not chat.started:
        if purpose == "send":
            raise forbidden("bot can't initiate conversation with a user")
        raise bad_request(errors.CHAT_NOT_FOUND)
    if chat.blocked and purpose in {"send", "edit"}:
        raise forbidden("bot was blocked by the user")
    return chat


def chat_full_info(chat: ChatState) -> dict[str, Any]:
    """Return the ``ChatFullInfo`` object ``getChat`` answers with."""
    info = chat.to_api()
    info["accent_color_id"] = abs(chat.id) % 7
    info["max_reaction_count"] = 11
    info["accepted_gift_types"] = {
        "unlimited_gifts": True,
        "limited_gifts": True,
        "unique_gifts": True,
        "premium_subscription": True,
        "gifts_from_channels": True,
    }
    if isinstance(chat, PrivateChat) and chat.user.username:
        info["active_usernames"] = [chat.user.username]
    if isinstance(chat, Channel):
        if chat.username:
            info["active_usernames"] = [chat.username]
        if chat.description:
            info["description"] = chat.description
    return info


def member_object(user: dict[str, Any], membership: ChannelMembership) -> dict[str, Any]:
    """Return the ``ChatMember`` object for a bot's channel membership."""
    if membership.status == "administrator":
        return {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
            **{name: bool(value) for name, value in membership.rights.items()},
        }
    if membership.status == "kicked":
        return {"status": "kicked", "user": user, "until_date": 0}
    return {"status": membership.status, "user": user}


def _owner_object(owner: UserProfile) -> dict[str, Any]:
    return {"status": "creator", "user": owner.to_api(), "is_anonymous": False}


# --- message content ---------------------------------------------------------------------


def _text(ctx: Context, name: str, entities_name: str) -> tuple[str, list[dict[str, Any]]]:
    text = ctx.params.string(name) or ""
    entities = ctx.params.json(entities_name, "entities")
    return format_text(text, ctx.params.string("parse_mode"), entities)


def _message_text(ctx: Context) -> tuple[str, list[dict[str, Any]]]:
    if not ctx.params.string("text"):
        raise bad_request(errors.MESSAGE_TEXT_EMPTY)
    plain, entities = _text(ctx, "text", "entities")
    if not plain:
        raise bad_request(errors.MESSAGE_TEXT_EMPTY)
    if len(plain) > MAX_TEXT_LENGTH:
        raise bad_request(errors.MESSAGE_TOO_LONG)
    return plain, entities


def _caption(ctx: Context) -> tuple[str, list[dict[str, Any]]]:
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


def _check_markup_for_chat(inline: dict[str, Any] | None, chat: ChatState) -> None:
    if inline is None or isinstance(chat, PrivateChat):
        return
    for row in inline["inline_keyboard"]:
        for button in row:
            if "web_app" in button:
                raise bad_request("BUTTON_TYPE_INVALID")


def _apply_chat_markup(chat: ChatState, other: dict[str, Any] | None) -> None:
    if not isinstance(chat, PrivateChat) or other is None:
        return
    if "keyboard" in other:
        chat.reply_keyboard = other
    elif other.get("remove_keyboard"):
        chat.reply_keyboard = None


def _reply_target(ctx: Context, chat: ChatState) -> ChatMessage | None:
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


def _own_message(ctx: Context, message: ChatMessage) -> bool:
    return message.from_bot and (message.sender or {}).get("id") == ctx.bot.identity.id


# --- files ---------------------------------------------------------------------------------


def store_upload(
    world: World, bot: BotState, kind: str, data: bytes, extension: str, **fields: Any
) -> StoredFile:
    """Keep ``data`` as a file of ``bot`` and return it with fresh identifiers."""
    file_id, unique_id = new_file_ids(kind)
    folder = "photos" if kind == "photo" else "documents"
    path = f"{folder}/file_{next(world.file_counter)}.{extension}"
    return world.store_file(
        StoredFile(
            file_id=file_id,
            file_unique_id=unique_id,
            kind=kind,
            data=data,
            bot_id=bot.identity.id,
            file_path=path,
            **fields,
        )
    )


def store_photo(world: World, bot: BotState, data: bytes) -> list[StoredFile]:
    """Validate an image like Telegram and keep it with its thumbnails, smallest first.

    Raises:
        ApiError: ``IMAGE_PROCESS_FAILED``, ``PHOTO_INVALID_DIMENSIONS``, too big.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    if len(data) > MAX_PHOTO_BYTES:
        raise bad_request("file is too big")
    info = image_info(data)
    if info is None:
        raise bad_request("IMAGE_PROCESS_FAILED")
    extension, width, height = info
    if width + height > 10000 or max(width, height) > 20 * max(min(width, height), 1):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    sizes = [
        store_upload(world, bot, "photo", thumb, "jpg", width=w, height=h)
        for thumb, w, h in thumbnails(data, width, height)
    ]
    # Telegram re-encodes the full size as JPEG; the double keeps the upload byte for byte
    # so a test can read back exactly what the product sent.
    sizes.append(store_upload(world, bot, "photo", data, extension, width=width, height=height))
    for stored in sizes:
        world.photo_sets[stored.file_id] = sizes
    return sizes


def store_document(world: World, bot: BotState, data: bytes, filename: str) -> StoredFile:
    """Keep a document under its filename, with the MIME type its extension implies.

    Raises:
        ApiError: 413 when larger than the 50 MB upload limit.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    extension = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
    return store_upload(
        world,
        bot,
        "document",
        data,
        extension,
        filename=filename,
        mime_type=guess_mime_type(filename),
    )


async def _media_bytes(ctx: Context, source: Upload | str, kind: str) -> Upload | StoredFile:
    """Return an upload, a file fetched by URL, or the stored file a ``file_id`` names."""
    if isinstance(source, Upload):
        return source
    if re.match(r"(?i)^https?://", source):
        data = await ctx.host.fetch(source)
        name = urlsplit(source).path.rsplit("/", 1)[-1] or "file"
        return Upload(filename=name, content_type="", data=data)
    stored = ctx.world.files.get(source)
    if stored is None or stored.bot_id != ctx.bot.identity.id:
        raise bad_request(errors.WRONG_FILE_ID)
    if stored.kind != kind:
        raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
    return stored


# --- methods -------------------------------------------------------------------------------


@method("getMe")
async def get_me(ctx: Context) -> Any:
    """``getMe``: the bot's ``User`` with its capabilities."""
    return {
        **ctx.bot.identity.to_api(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
async def log_out(ctx: Context) -> Any:
    """``logOut``: acknowledged; nothing to log out from."""
    return True


@method("close")
async def close(ctx: Context) -> Any:
    """``close``: acknowledged."""
    return True


@method("getUpdates")
async def get_updates(ctx: Context) -> Any:
    """``getUpdates``: long polling with ``offset``, ``limit``, ``timeout`` and ``allowed_updates``.

    A newer ``getUpdates`` or a ``setWebhook`` ends a waiting request with 409, as Telegram does.
    """
    bot, params = ctx.bot, ctx.params
    if bot.webhook is not None:
        raise ApiError(409, errors.WEBHOOK_ACTIVE)
    allowed = params.json("allowed_updates", "allowed updates")
    if isinstance(allowed, list):
        bot.allowed_updates = frozenset(map(str, allowed)) if allowed else None
    offset = params.integer("offset") or 0
    limit = params.integer("limit") or 100
    limit = min(max(limit, 1), 100)
    timeout = max(params.integer("timeout") or 0, 0)
    if offset > 0:
        bot.updates = [update for update in bot.updates if update["update_id"] >= offset]
    elif offset < 0:
        bot.updates = bot.updates[offset:]

    ticket = PollTicket()
    if bot.active_poll is not None:
        bot.active_poll.terminated = errors.TERMINATED_BY_GET_UPDATES
    bot.active_poll = ticket
    ctx.world.notify()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if ticket.terminated == "shutdown":
                return []
            if ticket.terminated is not None:
                raise ApiError(409, ticket.terminated)
            ctx.host.check_outage()
            if bot.updates:
                return bot.updates[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await ctx.host.wait_change(remaining)
    finally:
        if bot.active_poll is ticket:
            bot.active_poll = None


@method("setWebhook")
async def set_webhook(ctx: Context) -> Any:
    """``setWebhook``: deliver updates by POST to ``url`` (an empty ``url`` removes it).

    Telegram demands HTTPS on ports 443, 80, 88 or 8443; the double accepts any http(s)
    URL so a test can listen on a loopback port, and only ever connects to loopback hosts.
    """
    bot, params = ctx.bot, ctx.params
    url = params.string("url") or ""
    if not url:
        return _remove_webhook(ctx)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.string("secret_token")
    if secret is not None:
        if len(secret) > 256:
            raise bad_request("secret token is too long")
        if not _SECRET_TOKEN_RE.match(secret):
            raise bad_request("secret token contains unallowed characters")
    max_connections = min(max(params.integer("max_connections") or 40, 1), 100)
    allowed = params.json("allowed_updates", "allowed updates")
    if isinstance(allowed, list):
        bot.allowed_updates = frozenset(map(str, allowed)) if allowed else None
    if params.flag("drop_pending_updates"):
        bot.updates.clear()
    config = WebhookConfig(
        url=url,
        secret_token=secret or None,
        max_connections=max_connections,
        ip_address=params.string("ip_address"),
        has_custom_certificate=isinstance(params.get("certificate"), Upload),
    )
    unchanged = bot.webhook is not None and bot.webhook.same_as(config)
    if bot.webhook is not None:
        ctx.host.stop_webhook(bot)
        config.last_error_date = bot.webhook.last_error_date
        config.last_error_message = bot.webhook.last_error_message
    bot.webhook = config
    if bot.active_poll is not None:
        bot.active_poll.terminated = errors.TERMINATED_BY_SET_WEBHOOK
    ctx.host.start_webhook(bot)
    ctx.world.notify()
    return Answer(True, "Webhook is already set" if unchanged else "Webhook was set")


@method("deleteWebhook")
async def delete_webhook(ctx: Context) -> Any:
    """``deleteWebhook``: back to ``getUpdates``; ``drop_pending_updates`` clears the queue."""
    return _remove_webhook(ctx)


def _remove_webhook(ctx: Context) -> Answer:
    bot = ctx.bot
    if ctx.params.flag("drop_pending_updates"):
        bot.updates.clear()
    if bot.webhook is None:
        return Answer(True, "Webhook is already deleted")
    ctx.host.stop_webhook(bot)
    bot.webhook = None
    ctx.world.notify()
    return Answer(True, "Webhook was deleted")


@method("getWebhookInfo")
async def get_webhook_info(ctx: Context) -> Any:
    """``getWebhookInfo``: the webhook, pending update count and the last delivery error."""
    bot = ctx.bot
    info: dict[str, Any] = {
        "url": bot.webhook.url if bot.webhook else "",
        "has_custom_certificate": bool(bot.webhook and bot.webhook.has_custom_certificate),
        "pending_update_count": len(bot.updates),
    }
    if bot.webhook is not None:
        host = urlsplit(bot.webhook.url).hostname or ""
        if host in LOOPBACK_HOSTS:
            info["ip_address"] = "::1" if host == "::1" else "127.0.0.1"
        if bot.webhook.last_error_date is not None:
            info["last_error_date"] = bot.webhook.last_error_date
            info["last_error_message"] = bot.webhook.last_error_message
        info["max_connections"] = bot.webhook.max_connections
        if bot.allowed_updates is not None:
            info["allowed_updates"] = sorted(bot.allowed_updates)
    return info


@method("sendMessage")
async def send_message(ctx: Context) -> Any:
    """``sendMessage``: text with ``parse_mode``/``entities``, a reply markup, a reply target."""
    if ctx.params.get("chat_id") in (None, ""):
        raise bad_request(errors.CHAT_ID_EMPTY)
    plain, entities = _message_text(ctx)
    inline, other = read_markup(ctx)
    chat = resolve_chat(ctx, "send")
    _check_markup_for_chat(inline, chat)
    reply_to = _reply_target(ctx, chat)
    version = MessageVersion(
        text=plain,
        entities=tuple(entities),
        reply_markup=inline,
        raw=ctx.params.string("text"),
        parse_mode=ctx.params.string("parse_mode"),
    )
    message = post_bot_message(ctx, chat, version, reply_to=reply_to)
    _apply_chat_markup(chat, other)
    return message.to_api()


@method("sendPhoto")
async def send_photo(ctx: Context) -> Any:
    """``sendPhoto``: an uploaded image (kept byte for byte), a ``file_id`` or a loopback URL."""
    return await _send_media(ctx, "photo")


@method("sendDocument")
async def send_document(ctx: Context) -> Any:
    """``sendDocument``: an uploaded file with its name, a ``file_id`` or a loopback URL."""
    return await _send_media(ctx, "document")


async def _send_media(ctx: Context, kind: str) -> Any:
    if ctx.params.get("chat_id") in (None, ""):
        raise bad_request(errors.CHAT_ID_EMPTY)
    caption, caption_entities = _caption(ctx)
    inline, other = read_markup(ctx)
    source = ctx.params.media(kind)
    if source is None:
        raise bad_request(f"there is no {kind} in the request")
    chat = resolve_chat(ctx, "send")
    _check_markup_for_chat(inline, chat)
    reply_to = _reply_target(ctx, chat)
    content = await _media_bytes(ctx, source, kind)
    photo_files: list[StoredFile] | None = None
    document_file: StoredFile | None = None
    if kind == "photo":
        if isinstance(content, StoredFile):
            photo_files = ctx.world.photo_sets.get(content.file_id, [content])
        else:
            photo_files = store_photo(ctx.world, ctx.bot, content.data)
    elif isinstance(content, StoredFile):
        document_file = content
    else:
        document_file = store_document(
            ctx.world, ctx.bot, content.data, content.filename or "document"
        )
    shown = photo_files[-1] if photo_files else document_file
    version = MessageVersion(
        caption=caption or None,
        caption_entities=tuple(caption_entities),
        reply_markup=inline,
        raw=ctx.params.string("caption"),
        parse_mode=ctx.params.string("parse_mode"),
        media=shown.file_unique_id if shown is not None else None,
    )
    message = post_bot_message(
        ctx,
        chat,
        version,
        reply_to=reply_to,
        photo_files=photo_files,
        document_file=document_file,
    )
    _apply_chat_markup(chat, other)
    return message.to_api()


def _message_to_edit(ctx: Context) -> ChatMessage:
    if ctx.params.get("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = resolve_chat(ctx, "edit")
    message_id = ctx.params.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = chat.find(message_id)
    if message is None:
        raise bad_request("message to edit not found")
    if not _own_message(ctx, message):
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
    plain, entities = _message_text(ctx)
    inline, _ = read_markup(ctx)
    message = _message_to_edit(ctx)
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
    caption, caption_entities = _caption(ctx)
    inline, _ = read_markup(ctx)
    message = _message_to_edit(ctx)
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
    message = _message_to_edit(ctx)
    version = dataclasses.replace(message.current, reply_markup=inline, edit_date=now())
    return _apply_edit(ctx, message, version)


def _delete(ctx: Context, chat: ChatState, message_id: int | None) -> bool:
    message = chat.find(message_id)
    if message is None:
        return False
    if isinstance(chat, Channel):
        rights = chat.membership(ctx.bot.identity.id).rights
        own_post = _own_message(ctx, message) and rights.get("can_post_messages")
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


@method("sendChatAction")
async def send_chat_action(ctx: Context) -> Any:
    """``sendChatAction``: validated and acknowledged."""
    action = ctx.params.string("action")
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    resolve_chat(ctx, "send")
    return True


@method("getFile")
async def get_file(ctx: Context) -> Any:
    """``getFile``: the ``File`` with its ``file_path`` for the download route."""
    file_id = ctx.params.string("file_id") or ""
    stored = ctx.world.files.get(file_id)
    if stored is None or stored.bot_id != ctx.bot.identity.id:
        raise bad_request("invalid file_id")
    if stored.size > MAX_DOWNLOAD_BYTES:
        raise bad_request("file is too big")
    return stored.file()


@method("getChat")
async def get_chat(ctx: Context) -> Any:
    """``getChat``: ``ChatFullInfo`` of a private chat or a visible channel."""
    return chat_full_info(resolve_chat(ctx, "read"))


@method("getChatMember")
async def get_chat_member(ctx: Context) -> Any:
    """``getChatMember``: in channels the bot sees itself, and everyone when an administrator."""
    chat = resolve_chat(ctx, "read")
    user_id = ctx.params.integer("user_id")
    if user_id is None:
        raise bad_request("invalid user_id specified")
    bot = ctx.bot.identity
    if isinstance(chat, PrivateChat):
        if user_id == chat.user.id:
            return {"status": "member", "user": chat.user.to_api()}
        if user_id == bot.id:
            return {"status": "member", "user": bot.to_api()}
        raise bad_request("user not found")
    assert isinstance(chat, Channel)
    membership = chat.membership(bot.id)
    if user_id == bot.id:
        return member_object(bot.to_api(), membership)
    if membership.status != "administrator":
        raise bad_request("member list is inaccessible")
    if chat.owner is not None and user_id == chat.owner.id:
        return _owner_object(chat.owner)
    other_bot = ctx.world.bots_by_id.get(user_id)
    if other_bot is not None:
        return member_object(other_bot.identity.to_api(), chat.membership(user_id))
    user = ctx.world.users.get(user_id)
    if user is None:
        raise bad_request("user not found")
    return {"status": "left", "user": user.to_api()}


@method("getChatAdministrators")
async def get_chat_administrators(ctx: Context) -> Any:
    """``getChatAdministrators``: the owner and the administrator bots of a channel."""
    chat = resolve_chat(ctx, "read")
    if isinstance(chat, PrivateChat):
        raise bad_request("there are no administrators in the private chat")
    assert isinstance(chat, Channel)
    if chat.membership(ctx.bot.identity.id).status != "administrator":
        raise bad_request("member list is inaccessible")
    admins = [_owner_object(chat.owner)] if chat.owner is not None else []
    for bot_id, membership in chat.bots.items():
        if membership.status == "administrator" and bot_id in ctx.world.bots_by_id:
            identity = ctx.world.bots_by_id[bot_id].identity
            admins.append(member_object(identity.to_api(), membership))
    return admins


@method("getChatMemberCount")
async def get_chat_member_count(ctx: Context) -> Any:
    """``getChatMemberCount``: subscribers of a channel, 2 in a private chat."""
    chat = resolve_chat(ctx, "read")
    return chat.subscribers if isinstance(chat, Channel) else 2


def _command_key(ctx: Context) -> tuple[str, str]:
    scope = ctx.params.json("scope", "bot command scope") or {"type": "default"}
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise bad_request("can't parse BotCommandScope: Object expected")
    language = ctx.params.string("language_code") or ""
    if language and not re.fullmatch(r"[a-z]{2}", language):
        raise bad_request("invalid language code specified")
    return json.dumps(scope, sort_keys=True), language


@method("setMyCommands")
async def set_my_commands(ctx: Context) -> Any:
    """``setMyCommands``: per scope and language; names are 1-32 of ``a-z 0-9 _``."""
    commands = ctx.params.json("commands", "commands") or []
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    clean = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand: Object expected")
        name, description = command.get("command"), command.get("description")
        if not isinstance(name, str) or not _COMMAND_RE.match(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not description.strip():
            raise bad_request("command description must be non-empty")
        if len(description) > 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        clean.append({"command": name, "description": description})
    ctx.bot.commands[_command_key(ctx)] = clean
    return True


@method("getMyCommands")
async def get_my_commands(ctx: Context) -> Any:
    """``getMyCommands``: exactly the list set for that scope and language."""
    return ctx.bot.commands.get(_command_key(ctx), [])


@method("deleteMyCommands")
async def delete_my_commands(ctx: Context) -> Any:
    """``deleteMyCommands``: forget the list of that scope and language."""
    ctx.bot.commands.pop(_command_key(ctx), None)
    return True


def _menu_chat(ctx: Context) -> PrivateChat | None:
    if ctx.params.get("chat_id") in (None, ""):
        return None
    chat = resolve_chat(ctx, "read")
    if not isinstance(chat, PrivateChat):
        raise bad_request(errors.CHAT_NOT_FOUND)
    return chat


@method("setChatMenuButton")
async def set_chat_menu_button(ctx: Context) -> Any:
    """``setChatMenuButton``: ``commands``, ``web_app`` (HTTPS only) or ``default``."""
    button = ctx.params.json("menu_button", "menu button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in {"commands", "web_app", "default"}:
        raise bad_request("can't parse menu button JSON object")
    if button["type"] == "web_app":
        url = (button.get("web_app") or {}).get("url")
        if not button.get("text"):
            raise bad_request("menu button text must be non-empty")
        if not isinstance(url, str) or urlsplit(url).scheme != "https":
            raise bad_request(
                f"menu button Web App URL '{url}' is invalid: Only HTTPS links are allowed"
            )
    chat = _menu_chat(ctx)
    if chat is None:
        ctx.bot.default_menu_button = button
    else:
        chat.menu_button = button
    ctx.world.notify()
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(ctx: Context) -> Any:
    """``getChatMenuButton``: the chat's button, else the bot's default."""
    chat = _menu_chat(ctx)
    own = chat.menu_button if chat is not None else None
    return own or ctx.bot.default_menu_button or {"type": "commands"}


def _profile_text(field_name: str, limit: int) -> tuple[Handler, Handler]:
    async def setter(ctx: Context) -> Any:
        value = ctx.params.string(field_name) or ""
        if len(value) > limit:
            raise bad_request(f"bot {field_name.replace('_', ' ')} is too long")
        ctx.bot.profile[f"{field_name}:{ctx.params.string('language_code') or ''}"] = value
        return True

    async def getter(ctx: Context) -> Any:
        key = f"{field_name}:{ctx.params.string('language_code') or ''}"
        value = ctx.bot.profile.get(key)
        if value is None and field_name == "name":
            value = ctx.bot.identity.first_name
        return {field_name: value or ""}

    return setter, getter


for _field, _limit, _suffix in (
    ("name", 64, "Name"),
    ("description", 512, "Description"),
    ("short_description", 120, "ShortDescription"),
):
    _setter, _getter = _profile_text(_field, _limit)
    method(f"setMy{_suffix}")(_setter)
    method(f"getMy{_suffix}")(_getter)
