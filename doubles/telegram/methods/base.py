"""What every Bot API method of the double builds on: typed parameters, the call context
and the registry of handlers."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import bad_request
from ..media import Upload
from ..state_world import BotState, World

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

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
