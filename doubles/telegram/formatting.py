"""Message text formatting the way the Bot API does it.

Telegram turns ``parse_mode`` markup into plain text plus ``MessageEntity`` objects whose
offsets count UTF-16 code units, rejects broken markup with ``can't parse entities: ...``
descriptions, trims surrounding whitespace and detects commands, mentions, hashtags,
cashtags, URLs and e-mail addresses by itself. The rules here follow the behaviour of the
open-source Bot API server (tdlib), re-implemented in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ApiError, bad_request

Entity = dict[str, Any]

_SPACES = " \t\r\n\v\0"
_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!\n")
# Names tdlib uses in "Can't find end of <Name> entity" errors.
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}
_LINK_SCHEMES = frozenset({"http", "https", "ftp", "tg", "ton"})
_CUSTOM_EMOJI_URL = re.compile(r"^tg://emoji\?id=(\d+)$")

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


def _u16(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _byte_offset(source: str, index: int) -> int:
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


def _decode_html_entity(source: str, pos: int) -> tuple[str, int] | None:
    """Decode ``&...;`` at ``pos``; return the character and the index after it."""
    size = len(source)
    end = pos + 1
    if end < size and source[end] == "#":
        end += 1
        value = 0
        if end < size and source[end] == "x":
            end += 1
            while end < size and source[end] in "0123456789abcdefABCDEF":
                value = value * 16 + int(source[end], 16)
                end += 1
        else:
            while end < size and "0" <= source[end] <= "9":
                value = value * 10 + int(source[end])
                end += 1
        if value == 0 or value >= 0x10FFFF or end - pos >= 10:
            return None
        if 0xD800 <= value <= 0xDFFF:
            raise EntityParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        char = chr(value)
    else:
        while end < size and source[end].isascii() and source[end].isalpha():
            end += 1
        named = _NAMED_HTML_ENTITIES.get(source[pos + 1 : end])
        if named is None:
            return None
        char = named
    if end < size and source[end] == ";":
        end += 1
    return char, end


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    out_index: int
    expandable: bool = False


def parse_html(source: str) -> tuple[str, list[Entity]]:
    """Parse ``parse_mode=HTML`` markup into plain text and entities.

    Raises:
        EntityParseError: With Telegram's wording and byte offsets.
    """
    out: list[str] = []
    entities: list[Entity] = []
    stack: list[_OpenTag] = []
    utf16 = 0
    i = 0
    size = len(source)
    while i < size:
        char = source[i]
        if char == "&":
            decoded = _decode_html_entity(source, i)
            if decoded is not None:
                out.append(decoded[0])
                utf16 += _u16(decoded[0])
                i = decoded[1]
                continue
        if char != "<":
            out.append(char)
            utf16 += _u16(char)
            i += 1
            continue

        begin = i
        i += 1
        if i < size and source[i] == "/":
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {_byte_offset(source, begin)}"
                )
            j = i + 1
            while j < size and source[j] not in _SPACES and source[j] != ">":
                j += 1
            end_name = source[i + 1 : j].lower()
            while j < size and source[j] in _SPACES:
                j += 1
            if j >= size or source[j] != ">":
                raise EntityParseError(
                    f"Unclosed end tag at byte offset {_byte_offset(source, begin)}"
                )
            top = stack.pop()
            if end_name and end_name != top.name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(source, begin)}, "
                    f'expected "</{top.name}>", found "</{end_name}>"'
                )
            i = j + 1
            if utf16 > top.utf16_offset:
                _close_html_tag(top, utf16, "".join(out[top.out_index :]), entities)
            continue

        j = i
        while j < size and source[j] not in _SPACES and source[j] != ">":
            j += 1
        if j >= size:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(source, begin)}"
            )
        name = source[i:j].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, begin)}'
            )
        i, argument, expandable = _parse_html_attributes(source, j, name, begin)
        if name == "span" and argument != "spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(source, begin)}"
            )
        stack.append(_OpenTag(name, argument, utf16, len(out), expandable))

    if stack:
        raise EntityParseError(f"Can't find end tag corresponding to start tag {stack[-1].name}")
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return "".join(out), sort_entities(entities)


def _parse_html_attributes(source: str, i: int, tag: str, begin: int) -> tuple[int, str, bool]:
    """Read a start tag's attributes from ``i``; return the index after ``>``."""
    size = len(source)
    argument = ""
    expandable = False
    offset = _byte_offset(source, begin)
    while True:
        while i < size and source[i] in _SPACES:
            i += 1
        if i >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        if source[i] == ">":
            return i + 1, argument, expandable
        name_begin = i
        while i < size and source[i] not in _SPACES and source[i] not in "=>":
            i += 1
        attribute = source[name_begin:i]
        if not attribute:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {offset}'
            )
        while i < size and source[i] in _SPACES:
            i += 1
        if i >= size or source[i] != "=":
            if tag == "blockquote" and attribute.lower() == "expandable":
                expandable = True
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {offset}"
            )
        i += 1
        while i < size and source[i] in _SPACES:
            i += 1
        if i >= size:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {offset}')
        if source[i] not in "'\"":
            token_begin = i
            while i < size and ((source[i].isascii() and source[i].isalnum()) or source[i] in ".-"):
                i += 1
            value = source[token_begin:i].lower()
            if i >= size or (source[i] not in _SPACES and source[i] != ">"):
                raise EntityParseError(
                    "Unexpected end of name token at byte offset "
                    f"{_byte_offset(source, token_begin)}"
                )
        else:
            quote = source[i]
            i += 1
            chars: list[str] = []
            while i < size and source[i] != quote:
                if source[i] == "&":
                    decoded = _decode_html_entity(source, i)
                    if decoded is not None:
                        chars.append(decoded[0])
                        i = decoded[1]
                        continue
                chars.append(source[i])
                i += 1
            if i < size:
                i += 1
            value = "".join(chars)
        if i >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        attribute = attribute.lower()
        if tag == "a" and attribute == "href":
            argument = value
        elif tag == "code" and attribute == "class" and value.startswith("language-"):
            argument = value.removeprefix("language-")
        elif tag == "span" and attribute == "class" and value.startswith("tg-"):
            argument = value.removeprefix("tg-")
        elif tag == "tg-emoji" and attribute == "emoji-id":
            argument = value


def _close_html_tag(tag: _OpenTag, utf16: int, inner: str, entities: list[Entity]) -> None:
    offset = tag.utf16_offset
    length = utf16 - offset
    name = tag.name
    if name in _HTML_TAG_TYPES:
        entities.append({"type": _HTML_TAG_TYPES[name], "offset": offset, "length": length})
    elif name == "tg-emoji":
        if not tag.argument.isdigit() or int(tag.argument) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append(
            {
                "type": "custom_emoji",
                "offset": offset,
                "length": length,
                "custom_emoji_id": tag.argument,
            }
        )
    elif name == "a":
        url = checked_link(tag.argument or inner)
        if url is not None:
            entities.append({"type": "text_link", "offset": offset, "length": length, "url": url})
    elif name == "pre":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and (last["offset"], last["length"]) == (offset, length)
            and last.get("language")
        ):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif name == "code":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "pre"
            and (last["offset"], last["length"]) == (offset, length)
            and tag.argument
        ):
            last["language"] = tag.argument
        else:
            entity: Entity = {"type": "code", "offset": offset, "length": length}
            if tag.argument:
                entity["language"] = tag.argument
            entities.append(entity)
    elif name == "blockquote":
        kind = "expandable_blockquote" if tag.expandable else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})


@dataclass
class _OpenMarkdown:
    kind: str
    argument: str
    utf16_offset: int
    byte_index: int
    out_index: int


def _reserved(char: str) -> EntityParseError:
    return EntityParseError(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def _is_escapable(char: str) -> bool:
    return bool(char) and 0 < ord(char) <= 126


def parse_markdown_v2(source: str) -> tuple[str, list[Entity]]:
    """Parse ``parse_mode=MarkdownV2`` markup into plain text and entities.

    Raises:
        EntityParseError: With Telegram's wording, e.g. for an unescaped reserved character.
    """
    out: list[str] = []
    entities: list[Entity] = []
    stack: list[_OpenMarkdown] = []
    have_blockquote = False
    utf16 = 0
    i = 0
    size = len(source)

    def at(index: int) -> str:
        return source[index] if index < size else ""

    def read_url(start: int, error: str) -> tuple[str, int]:
        chars: list[str] = []
        j = start
        while j < size and source[j] != ")":
            if source[j] == "\\" and _is_escapable(at(j + 1)):
                chars.append(source[j + 1])
                j += 2
                continue
            chars.append(source[j])
            j += 1
        if j >= size:
            raise EntityParseError(f"{error} at byte offset {_byte_offset(source, start)}")
        return "".join(chars), j

    while i < size:
        char = source[i]
        following = at(i + 1)
        if char == "\\" and _is_escapable(following):
            out.append(following)
            utf16 += 1
            i += 2
            continue
        in_code = bool(stack) and stack[-1].kind in {"code", "pre"}
        if char not in ("`" if in_code else _MDV2_RESERVED):
            out.append(char)
            utf16 += _u16(char)
            i += 1
            continue

        if stack and _ends_markdown_entity(
            stack[-1].kind, char, following, at(i + 2), have_blockquote
        ):
            top = stack[-1]
            if char == "\n" and top.kind != "blockquote":
                raise EntityParseError(
                    f"Can't find end of {_MDV2_NAMES[top.kind]} entity at byte offset "
                    f"{_byte_offset(source, top.byte_index)}"
                )
            argument = top.argument
            skip = utf16 == top.utf16_offset
            if top.kind in {"underline", "spoiler"}:
                i += 1
            elif top.kind == "pre":
                i += 2
            elif top.kind == "text_link":
                if following != "(":
                    url = "".join(out[top.out_index :])
                else:
                    url, i = read_url(i + 2, "Can't find end of a URL")
                link = checked_link(url)
                if link is None:
                    skip = True
                else:
                    argument = link
            elif top.kind == "custom_emoji":
                if following != "(":
                    raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                url, i = read_url(i + 2, "Can't find end of a custom emoji URL")
                match = _CUSTOM_EMOJI_URL.match(url)
                if match is None or int(match.group(1)) == 0:
                    raise EntityParseError("Invalid custom emoji identifier specified")
                argument = match.group(1)
            elif top.kind == "blockquote":
                have_blockquote = False
                out.append(char)
                utf16 += 1
            if not skip:
                entities.append(_markdown_entity(top.kind, top.utf16_offset, utf16, argument))
            stack.pop()
            i += 1
            continue

        start = i
        argument = ""
        kind: str | None
        if char == "_":
            kind = "underline" if following == "_" else "italic"
            i += 1 if following == "_" else 0
        elif char == "*":
            kind = "bold"
        elif char == "~":
            kind = "strikethrough"
        elif char == "|":
            if following != "|":
                raise _reserved(char)
            kind = "spoiler"
            i += 1
        elif char == "[":
            kind = "text_link"
        elif char == "`":
            if following == "`" and at(i + 2) == "`":
                kind = "pre"
                i += 3
                language_end = i
                while language_end < size and source[language_end] not in _SPACES + "`":
                    language_end += 1
                if i != language_end and language_end < size and source[language_end] != "`":
                    argument = source[i:language_end]
                    i = language_end
                if at(i) in {"\n", "\r"}:
                    pair = at(i + 1) in {"\n", "\r"} and at(i) != at(i + 1)
                    i += 2 if pair else 1
                i -= 1
            else:
                kind = "code"
        elif char == "!":
            if following != "[":
                raise _reserved(char)
            kind = "custom_emoji"
            i += 1
        elif char == "\n":
            out.append("\n")
            utf16 += 1
            kind = None
            if following == ">":
                i += 1
                if not have_blockquote:
                    kind = "blockquote"
                    have_blockquote = True
            if kind is None:
                i += 1
                continue
        elif char == ">" and i == 0:
            kind = "blockquote"
            have_blockquote = True
        else:
            raise _reserved(char)
        stack.append(_OpenMarkdown(kind, argument, utf16, start, len(out)))
        i += 1

    if have_blockquote and stack and stack[-1].kind == "blockquote":
        top = stack.pop()
        if utf16 != top.utf16_offset:
            entities.append(_markdown_entity("blockquote", top.utf16_offset, utf16, ""))
    if stack:
        raise EntityParseError(
            f"Can't find end of {_MDV2_NAMES[stack[-1].kind]} entity at byte offset "
            f"{_byte_offset(source, stack[-1].byte_index)}"
        )
    return "".join(out), sort_entities(entities)


def _ends_markdown_entity(
    kind: str, char: str, following: str, after: str, have_blockquote: bool
) -> bool:
    if have_blockquote and char == "\n" and following != ">":
        return True
    endings = {
        "bold": char == "*",
        "italic": char == "_" and following != "_",
        "code": char == "`",
        "pre": char == "`" and following == "`" and after == "`",
        "text_link": char == "]",
        "underline": char == "_" and following == "_",
        "strikethrough": char == "~",
        "spoiler": char == "|" and following == "|",
        "custom_emoji": char == "]",
    }
    return endings.get(kind, False)


def _markdown_entity(kind: str, offset: int, end: int, argument: str) -> Entity:
    entity: Entity = {"type": kind, "offset": offset, "length": end - offset}
    if kind == "text_link":
        entity["url"] = argument
    elif kind == "pre" and argument:
        entity["language"] = argument
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = argument
    return entity


def parse_markdown(source: str) -> tuple[str, list[Entity]]:
    """Parse legacy ``parse_mode=Markdown`` markup into plain text and entities.

    Raises:
        EntityParseError: When an entity is not closed.
    """
    out: list[str] = []
    entities: list[Entity] = []
    utf16 = 0
    i = 0
    size = len(source)
    while i < size:
        char = source[i]
        following = source[i + 1] if i + 1 < size else ""
        if char == "\\" and following in {"_", "*", "`", "["}:
            out.append(following)
            utf16 += 1
            i += 2
            continue
        if char not in {"_", "*", "`", "["}:
            out.append(char)
            utf16 += _u16(char)
            i += 1
            continue
        begin = i
        end_char = "]" if char == "[" else char
        is_pre = char == "`" and source[i + 1 : i + 3] == "``"
        i += 3 if is_pre else 1
        language = ""
        if is_pre:
            language_end = i
            while language_end < size and source[language_end] not in _SPACES + "`":
                language_end += 1
            if i != language_end and language_end < size and source[language_end] != "`":
                language = source[i:language_end]
                i = language_end
            if i < size and source[i] in "\r\n":
                pair = i + 1 < size and source[i + 1] in "\r\n" and source[i] != source[i + 1]
                i += 2 if pair else 1
        start_utf16 = utf16
        start_out = len(out)
        while i < size and (source[i] != end_char or (is_pre and source[i + 1 : i + 3] != "``")):
            out.append(source[i])
            utf16 += _u16(source[i])
            i += 1
        if i >= size:
            raise EntityParseError(
                "Can't find end of the entity starting at byte offset "
                f"{_byte_offset(source, begin)}"
            )
        if utf16 != start_utf16:
            span: Entity = {"offset": start_utf16, "length": utf16 - start_utf16}
            if char == "[":
                if source[i + 1 : i + 2] == "(":
                    close = source.find(")", i + 2)
                    close = size if close < 0 else close
                    url = source[i + 2 : close]
                    i = close
                else:
                    url = "".join(out[start_out:])
                link = checked_link(url)
                if link is not None:
                    entities.append({"type": "text_link", **span, "url": link})
            elif is_pre:
                entities.append(
                    {"type": "pre", **span, **({"language": language} if language else {})}
                )
            else:
                entities.append({"type": {"_": "italic", "*": "bold"}.get(char, "code"), **span})
        i += 3 if is_pre else 1
    return "".join(out), sort_entities(entities)


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
