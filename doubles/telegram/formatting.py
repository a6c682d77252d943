"""Message text formatting the way the Bot API does it.

Telegram turns ``parse_mode`` markup into plain text plus ``MessageEntity`` objects whose
offsets count UTF-16 code units, rejects broken markup with ``can't parse entities: ...``
descriptions, trims surrounding whitespace and detects commands, mentions, hashtags,
cashtags, URLs and e-mail addresses by itself. The rules here follow the behaviour of the
open-source Bot API server (tdlib), re-implemented in Python.

:func:`format_text` puts the pieces together: the parsers of :mod:`.html_markup` and
:mod:`.markdown_markup`, and the counting and detection of :mod:`.entities`.
"""

from __future__ import annotations

from typing import Any

from .entities import (
    Entity,
    EntityParseError,
    checked_link,
    find_auto_entities,
    sort_entities,
    utf16_len,
)
from .errors import ApiError, bad_request
from .html_markup import parse_html
from .markdown_markup import parse_markdown, parse_markdown_v2

__all__ = [
    "Entity",
    "EntityParseError",
    "checked_link",
    "find_auto_entities",
    "format_text",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "sort_entities",
    "utf16_len",
]


def _overlaps(entity: Entity, others: list[Entity]) -> bool:
    start, end = entity["offset"], entity["offset"] + entity["length"]
    return any(
        start < other["offset"] + other["length"] and other["offset"] < end for other in others
    )


def _trim(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Strip surrounding whitespace and move or clip entities accordingly."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    limit = utf16_len(stripped)
    trimmed: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, limit)
        if end > start:
            trimmed.append({**entity, "offset": start, "length": end - start})
    return stripped, trimmed


def _explicit_entities(raw: Any, text: str) -> list[Entity]:
    if not isinstance(raw, list):
        raise bad_request("can't parse entities JSON object")
    limit = utf16_len(text)
    entities: list[Entity] = []
    for item in raw:
        if not isinstance(item, dict):
            raise bad_request("can't parse MessageEntity: Object expected")
        kind, offset, length = item.get("type"), item.get("offset"), item.get("length")
        if not isinstance(kind, str) or not isinstance(offset, int) or not isinstance(length, int):
            raise bad_request('can\'t parse MessageEntity: Field "type" must be of type String')
        if offset < 0 or length <= 0 or offset >= limit:
            continue
        entities.append({**item, "length": min(length, limit - offset)})
    return sort_entities(entities)


def format_text(
    text: str, parse_mode: str | None, entities: Any = None
) -> tuple[str, list[Entity]]:
    """Turn a method's ``text``/``caption`` with its ``parse_mode`` into what Telegram stores.

    Args:
        text: The raw text as sent by the bot.
        parse_mode: ``HTML``, ``MarkdownV2``, ``Markdown`` (any case) or ``None``/empty.
        entities: An explicit ``entities`` list; when given, ``parse_mode`` is ignored.

    Returns:
        The plain text (trimmed) and its entities, auto-detected ones included.

    Raises:
        ApiError: ``unsupported parse_mode`` or ``can't parse entities: ...``.
    """
    if entities is not None:
        plain, parsed = text, _explicit_entities(entities, text)
    else:
        mode = (parse_mode or "").lower()
        parsers = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}
        if mode and mode not in parsers:
            raise bad_request("unsupported parse_mode")
        try:
            plain, parsed = parsers[mode](text) if mode else (text, [])
        except EntityParseError as error:
            raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
    plain, parsed = _trim(plain, parsed)
    extra = [entity for entity in find_auto_entities(plain) if not _overlaps(entity, parsed)]
    return plain, sort_entities(parsed + extra)
