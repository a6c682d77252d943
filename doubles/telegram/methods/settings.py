"""The bot's settings: commands per scope and language, the chat menu button (the Web App
entry point) and the profile texts (name, description, short description)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..errors import bad_request
from ..state_chats import PrivateChat
from .base import Context, Handler, method
from .chats import resolve_chat

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


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
