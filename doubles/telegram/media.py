"""Uploaded files: image dimensions, photo thumbnails, file identifiers."""

from __future__ import annotations

import io
import mimetypes
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Boxes of Telegram's photo sizes ("s", "m", "x", "y"); a photo gets each one smaller
# than its own longest side, plus the full size.
_THUMBNAIL_BOXES = (90, 320, 800, 1280)
_JPEG_SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC)}) | {
    0xCD,
    0xCE,
    0xCF,
}
# Prefixes that make identifiers look like Telegram's (photo, document).
_FILE_ID_PREFIX = {"photo": "AgACAgIAAxkBAAI", "document": "BQACAgIAAxkBAAI"}


@dataclass
class Upload:
    """A file part of a multipart request.

    Attributes:
        filename: The part's filename.
        content_type: The part's declared content type.
        data: The uploaded bytes.
    """

    filename: str
    content_type: str
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Upload(filename={self.filename!r}, size={len(self.data)})"


@dataclass
class StoredFile:
    """A file the double keeps, reachable through ``getFile`` and the file route.

    Attributes:
        file_id: Identifier valid for the bot that owns it.
        file_unique_id: Identifier stable across bots.
        kind: ``photo`` or ``document``.
        data: The bytes served on download.
        bot_id: The bot whose identifier this is.
        file_path: Path under ``/file/bot<token>/``.
        filename: Original filename, for documents.
        mime_type: MIME type, for documents.
        width: Pixel width, for photos.
        height: Pixel height, for photos.
    """

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes = field(repr=False)
    bot_id: int
    file_path: str
    filename: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        """Return the size in bytes."""
        return len(self.data)

    def photo_size(self) -> dict[str, Any]:
        """Return the ``PhotoSize`` object."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "width": self.width,
            "height": self.height,
        }

    def document(self) -> dict[str, Any]:
        """Return the ``Document`` object."""
        document: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
        }
        if self.filename:
            document["file_name"] = self.filename
        if self.mime_type:
            document["mime_type"] = self.mime_type
        return document

    def file(self) -> dict[str, Any]:
        """Return the ``File`` object ``getFile`` answers with."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.file_path,
        }


def new_file_ids(kind: str) -> tuple[str, str]:
    """Return a fresh ``(file_id, file_unique_id)`` pair shaped like Telegram's."""
    return (
        _FILE_ID_PREFIX.get(kind, "CAACAgIAAxkBAAI") + secrets.token_urlsafe(45),
        "AQAD" + secrets.token_urlsafe(9),
    )


def image_info(data: bytes) -> tuple[str, int, int] | None:
    """Return ``(extension, width, height)`` of a PNG, JPEG, GIF or WebP image, else ``None``."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:6] in {b"GIF87a", b"GIF89a"} and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "gif", width, height
    if data.startswith(b"\xff\xd8"):
        size = _jpeg_size(data)
        return None if size is None else ("jpg", *size)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = _webp_size(data)
        return None if size is None else ("webp", *size)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in _JPEG_SOF_MARKERS:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def thumbnails(data: bytes, width: int, height: int) -> list[tuple[bytes, int, int]]:
    """Return the smaller JPEG renditions Telegram adds to a photo, smallest first.

    Uses Pillow (a matplotlib dependency); without it, or for an image Pillow cannot
    read, the photo simply has no thumbnails.
    """
    boxes = [box for box in _THUMBNAIL_BOXES if box < max(width, height)]
    if not boxes:
        return []
    try:
        from PIL import Image

        renditions = []
        with Image.open(io.BytesIO(data)) as original:
            rgb = original.convert("RGB")
        for box in boxes:
            scaled = rgb.copy()
            scaled.thumbnail((box, box))
            buffer = io.BytesIO()
            scaled.save(buffer, "JPEG", quality=80)
            renditions.append((buffer.getvalue(), scaled.width, scaled.height))
    except Exception:
        return []
    return renditions


def guess_mime_type(filename: str) -> str:
    """Return the MIME type Telegram would assign from the file's extension."""
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
