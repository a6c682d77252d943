"""``editMessageMedia``: replace the photo or document of a bot message (with its caption and
keyboard), as Telegram does for an uploaded file, a ``file_id`` or a URL."""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import errors
from ..errors import bad_request
from ..formatting import format_text
from ..media import StoredFile, Upload
from ..state import now
from .base import MAX_CAPTION_LENGTH, Context, method
from .content import read_markup
from .files import media_bytes, store_document, store_photo
from .messages import message_to_edit

_KINDS = frozenset({"photo", "document"})


def _input_media(ctx: Context) -> dict[str, Any]:
    media = ctx.params.json("media", "input media")
    if not isinstance(media, dict):
        raise bad_request("can't parse InputMedia: media not found")
    kind = media.get("type")
    if kind not in _KINDS:
        raise bad_request(f"can't parse InputMedia: unsupported media type {kind!r}")
    return media


def _source(ctx: Context, media: dict[str, Any]) -> Upload | str:
    value = media.get("media")
    if not isinstance(value, str) or not value:
        raise bad_request("can't parse InputMedia: media not found")
    if value.startswith("attach://"):
        upload = ctx.params.uploads.get(value.removeprefix("attach://"))
        if upload is None:
            raise bad_request("can't parse InputMedia: media not found")
        return upload
    return value


@method("editMessageMedia")
async def edit_message_media(ctx: Context) -> Any:
    """``editMessageMedia``: a new photo or document; the caption is the one ``media`` carries
    (none removes it) and a missing ``reply_markup`` removes the keyboard."""
    media = _input_media(ctx)
    inline, _ = read_markup(ctx)
    message = message_to_edit(ctx)
    if not message.photo_files and message.document_file is None:
        raise bad_request("there is no media in the message to edit")
    kind = str(media["type"])
    content = await media_bytes(ctx, _source(ctx, media), kind)
    caption_text = media.get("caption") if isinstance(media.get("caption"), str) else ""
    entities = media.get("caption_entities")
    parse_mode = media.get("parse_mode") if isinstance(media.get("parse_mode"), str) else None
    caption, caption_entities = format_text(
        caption_text or "", parse_mode, entities if isinstance(entities, list) else None
    )
    if len(caption) > MAX_CAPTION_LENGTH:
        raise bad_request(errors.CAPTION_TOO_LONG)
    photo_files: list[StoredFile] = []
    document_file: StoredFile | None = None
    if kind == "photo":
        if isinstance(content, StoredFile):
            photo_files = ctx.world.photo_sets.get(content.file_id, [content])
        else:
            photo_files = store_photo(ctx.world, ctx.bot, content.data)
        shown = photo_files[-1]
    else:
        if isinstance(content, StoredFile):
            document_file = content
        else:
            document_file = store_document(
                ctx.world, ctx.bot, content.data, content.filename or "document"
            )
        shown = document_file
    version = dataclasses.replace(
        message.current,
        caption=caption or None,
        caption_entities=tuple(caption_entities),
        reply_markup=inline,
        raw=caption_text or None,
        parse_mode=parse_mode,
        media=shown.file_unique_id,
        edit_date=now(),
    )
    if message.current.same_content(version):
        raise bad_request(errors.NOT_MODIFIED)
    message.photo_files = photo_files
    message.document_file = document_file
    message.add_version(version)
    ctx.world.notify()
    return message.to_api()
