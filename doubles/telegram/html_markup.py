"""``parse_mode=HTML``: Telegram's HTML subset turned into plain text and entities, with the
Bot API's ``can't parse entities`` errors."""

from __future__ import annotations

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
                utf16 += utf16_width(decoded[0])
                i = decoded[1]
                continue
        if char != "<":
            out.append(char)
            utf16 += utf16_width(char)
            i += 1
            continue

        begin = i
        i += 1
        if i < size and source[i] == "/":
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {byte_offset(source, begin)}"
                )
            j = i + 1
            while j < size and source[j] not in SPACES and source[j] != ">":
                j += 1
            end_name = source[i + 1 : j].lower()
            while j < size and source[j] in SPACES:
                j += 1
            if j >= size or source[j] != ">":
                raise EntityParseError(
                    f"Unclosed end tag at byte offset {byte_offset(source, begin)}"
                )
            top = stack.pop()
            if end_name and end_name != top.name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {byte_offset(source, begin)}, "
                    f'expected "</{top.name}>", found "</{end_name}>"'
                )
            i = j + 1
            if utf16 > top.utf16_offset:
                _close_html_tag(top, utf16, "".join(out[top.out_index :]), entities)
            continue

        j = i
        while j < size and source[j] not in SPACES and source[j] != ">":
            j += 1
        if j >= size:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {byte_offset(source, begin)}"
            )
        name = source[i:j].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {byte_offset(source, begin)}'
            )
        i, argument, expandable = _parse_html_attributes(source, j, name, begin)
        if name == "span" and argument != "spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{byte_offset(source, begin)}"
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
    offset = byte_offset(source, begin)
    while True:
        while i < size and source[i] in SPACES:
            i += 1
        if i >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        if source[i] == ">":
            return i + 1, argument, expandable
        name_begin = i
        while i < size and source[i] not in SPACES and source[i] not in "=>":
            i += 1
        attribute = source[name_begin:i]
        if not attribute:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {offset}'
            )
        while i < size and source[i] in SPACES:
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
        while i < size and source[i] in SPACES:
            i += 1
        if i >= size:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {offset}')
        if source[i] not in "'\"":
            token_begin = i
            while i < size and ((source[i].isascii() and source[i].isalnum()) or source[i] in ".-"):
                i += 1
            value = source[token_begin:i].lower()
            if i >= size or (source[i] not in SPACES and source[i] != ">"):
                raise EntityParseError(
                    "Unexpected end of name token at byte offset "
                    f"{byte_offset(source, token_begin)}"
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
