"""Message entities the way the Bot API counts and detects them.

Offsets and lengths count UTF-16 code units. Telegram detects commands, mentions,
hashtags, cashtags, URLs and e-mail addresses in any text by itself; link targets are
normalised by :func:`checked_link`. The rules follow the open-source Bot API server
(tdlib), re-implemented in Python.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

Entity = dict[str, Any]

SPACES = " \t\r\n\v\0"

_LINK_SCHEMES = frozenset({"http", "https", "ftp", "tg", "ton"})

_BOT_COMMAND_RE = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_MENTION_RE = re.compile(r"(?<!\w)@[A-Za-z0-9_]{4,32}(?!\w)")
_HASHTAG_RE = re.compile(r"(?<![\w\u200c])#[\w\u200c]{1,256}(?![\w\u200c]*#)")
_CASHTAG_RE = re.compile(r"(?<![\w$])\$(?:1INCH|[A-Z]{1,8})(?![\w$])")
_URL_RE = re.compile(r"(?i)\b(?:https?|tg|ton)://[^\s<>\"]+")
_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w)"
)
_URL_TRAILING_PUNCTUATION = ".,:;!?)]}'\""


class EntityParseError(Exception):
    """Markup that the Bot API refuses; the text is what follows ``can't parse entities:``."""


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf16_width(char: str) -> int:
    """Return how many UTF-16 code units ``char`` takes (2 outside the BMP)."""
    return 2 if ord(char) > 0xFFFF else 1


def byte_offset(source: str, index: int) -> int:
    """Return the UTF-8 byte offset of ``source[index]``, the position errors report."""
    return len(source[:index].encode("utf-8", "surrogatepass"))


def checked_link(url: str) -> str | None:
    """Normalise a link target like Telegram does, or return ``None`` if it is not a link.

    Bare domains get ``http://``; a URL without a path gets a trailing ``/``.
    """
    url = url.strip()
    if not url or any(char in url for char in " \t\n"):
        return None
    candidate = url if "://" in url or url.lower().startswith(("tg:", "ton:")) else f"http://{url}"
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _LINK_SCHEMES:
        return None
    if scheme in {"tg", "ton"}:
        return candidate
    if not parts.hostname:
        return None
    if not parts.path and not parts.query and not parts.fragment:
        candidate += "/"
    return candidate


def sort_entities(entities: list[Entity]) -> list[Entity]:
    """Order entities as Telegram does: by offset, the enclosing (longer) one first."""
    return sorted(entities, key=lambda entity: (entity["offset"], -entity["length"]))


def find_auto_entities(text: str) -> list[Entity]:
    """Find the entities Telegram detects in any text.

    Covers bot commands, mentions, hashtags, cashtags, URLs with a scheme and e-mail
    addresses. Bare domains (``example.com``) are not detected: Telegram checks them
    against its list of top-level domains, which this double does not carry.
    """
    found: list[tuple[int, int, str]] = []
    for kind, pattern in (
        ("bot_command", _BOT_COMMAND_RE),
        ("mention", _MENTION_RE),
        ("cashtag", _CASHTAG_RE),
        ("email", _EMAIL_RE),
    ):
        found.extend((m.start(), m.end(), kind) for m in pattern.finditer(text))
    for match in _HASHTAG_RE.finditer(text):
        if any(char.isalpha() for char in match.group()[1:]):
            found.append((match.start(), match.end(), "hashtag"))
    for match in _URL_RE.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in _URL_TRAILING_PUNCTUATION:
            end -= 1
        found.append((match.start(), end, "url"))

    entities: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for start, end, kind in sorted(found, key=lambda item: (item[0], -(item[1] - item[0]))):
        if any(start < other_end and other_start < end for other_start, other_end in taken):
            continue
        taken.append((start, end))
        entities.append(
            {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        )
    return entities
