"""Files: storing uploads like Telegram (photos with their thumbnails, documents),
``sendPhoto``, ``sendDocument`` and ``getFile``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..errors import ApiError, bad_request
from ..media import StoredFile, Upload, guess_mime_type, image_info, new_file_ids, thumbnails
from ..state import MessageVersion
from ..state_world import BotState, World
from .base import MAX_DOWNLOAD_BYTES, MAX_PHOTO_BYTES, MAX_UPLOAD_BYTES, Context, method
from .chats import resolve_chat
from .content import (
    apply_chat_markup,
    check_markup_for_chat,
    post_bot_message,
    read_caption,
    read_markup,
    reply_target,
)


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


async def media_bytes(ctx: Context, source: Upload | str, kind: str) -> Upload | StoredFile:
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
    caption, caption_entities = read_caption(ctx)
    inline, other = read_markup(ctx)
    source = ctx.params.media(kind)
    if source is None:
        raise bad_request(f"there is no {kind} in the request")
    chat = resolve_chat(ctx, "send")
    check_markup_for_chat(inline, chat)
    reply_to = reply_target(ctx, chat)
    content = await media_bytes(ctx, source, kind)
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
    apply_chat_markup(chat, other)
    return message.to_api()


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
