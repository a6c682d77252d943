"""``parse_mode=MarkdownV2`` and legacy ``Markdown`` turned into plain text and entities,
with the Bot API's ``can't parse entities`` errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .entities import (
    SPACES,
    Entity,
    EntityParseError,
    byte_offset,
    checked_link,
    sort_entities,
    utf16_width,
)

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

_CUSTOM_EMOJI_URL = re.compile(r"^tg://emoji\?id=(\d+)$")


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
            raise EntityParseError(f"{error} at byte offset {byte_offset(source, start)}")
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
            utf16 += utf16_width(char)
            i += 1
            continue

        if stack and _ends_markdown_entity(
            stack[-1].kind, char, following, at(i + 2), have_blockquote
        ):
            top = stack[-1]
            if char == "\n" and top.kind != "blockquote":
                raise EntityParseError(
                    f"Can't find end of {_MDV2_NAMES[top.kind]} entity at byte offset "
                    f"{byte_offset(source, top.byte_index)}"
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
                while language_end < size and source[language_end] not in SPACES + "`":
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
            f"{byte_offset(source, stack[-1].byte_index)}"
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
            utf16 += utf16_width(char)
            i += 1
            continue
        begin = i
        end_char = "]" if char == "[" else char
        is_pre = char == "`" and source[i + 1 : i + 3] == "``"
        i += 3 if is_pre else 1
        language = ""
        if is_pre:
            language_end = i
            while language_end < size and source[language_end] not in SPACES + "`":
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
            utf16 += utf16_width(source[i])
            i += 1
        if i >= size:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {byte_offset(source, begin)}"
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
