"""What the Telegram double remembers beyond messages: bots with their updates, webhooks and
callback queries, the calls received, and the :class:`World` holding it all.

Everything here is mutated only on the double's own event loop thread. Tests read the
public objects (:class:`ApiCall`, :class:`WebhookDelivery`, ...) from their own thread.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .state import DEFAULT_EXCLUDED_UPDATES, BotIdentity, ChatMessage, UserProfile
from .state_chats import Channel, PrivateChat

if TYPE_CHECKING:
    from .media import StoredFile


@dataclass
class CallbackAnswer:
    """What the bot answered to a button press (``answerCallbackQuery``).

    Attributes:
        query_id: The callback query's id.
        data: The pressed button's callback data.
        text: Notification text, if any.
        show_alert: Whether it is an alert rather than a toast.
        url: URL to open, if any.
        cache_time: Seconds the client may cache the answer.
    """

    query_id: str
    data: str | None
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0


@dataclass
class PendingCallback:
    """A callback query sent to a bot (internals)."""

    query_id: str
    user: UserProfile
    message: ChatMessage
    data: str | None
    created: float = field(default_factory=time.monotonic)
    answer: CallbackAnswer | None = None


@dataclass
class ApiCall:
    """One request a client made to the double.

    Attributes:
        seq: Order of arrival, from 1.
        method: Canonical method name (``sendMessage``), or the path's last part if unknown.
        params: Parameters, JSON fields decoded and numeric ids as ``int``; uploads as
            :class:`~doubles.telegram.media.Upload`.
        bot_id: The bot's id when the token is registered, else ``None``.
        status: HTTP status answered (``0`` when the connection was dropped on purpose).
        response: The JSON body answered, or ``None`` for a non-JSON fault.
        via: ``http``, or ``webhook_reply`` for a method returned in a webhook response.
        at: ``time.monotonic()`` when it arrived.
    """

    seq: int
    method: str
    params: dict[str, Any]
    bot_id: int | None
    status: int = 0
    response: dict[str, Any] | None = None
    via: str = "http"
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """Tell whether the call succeeded."""
        return bool(self.response and self.response.get("ok"))

    @property
    def result(self) -> Any:
        """Return the ``result`` of a successful call."""
        return (self.response or {}).get("result")

    @property
    def description(self) -> str | None:
        """Return the error ``description`` of a failed call."""
        return (self.response or {}).get("description")

    def __repr__(self) -> str:
        outcome = "ok" if self.ok else f"{self.status} {self.description or ''}".strip()
        return f"<ApiCall #{self.seq} {self.method} -> {outcome}>"


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to a bot's webhook.

    Attributes:
        update_id: The update delivered.
        url: Where it was posted.
        headers: Headers sent (the secret token header included).
        status: HTTP status the webhook answered, ``None`` if unreachable.
        error: Telegram-style ``last_error_message`` when the attempt failed.
        reply_method: Method the webhook answered with, if any.
    """

    update_id: int
    url: str
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None
    reply_method: str | None = None


@dataclass
class WebhookConfig:
    """A bot's webhook (internals)."""

    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    has_custom_certificate: bool
    last_error_date: int | None = None
    last_error_message: str | None = None
    task: asyncio.Task[None] | None = None

    def same_as(self, other: WebhookConfig) -> bool:
        """Tell whether setting ``other`` would change nothing."""
        return (self.url, self.secret_token, self.max_connections, self.ip_address) == (
            other.url,
            other.secret_token,
            other.max_connections,
            other.ip_address,
        )


@dataclass
class PollTicket:
    """One waiting ``getUpdates`` request (internals).

    Attributes:
        terminated: The 409 description that ended it early, if any.
    """

    terminated: str | None = None


class BotState:
    """Everything the double keeps per bot (internals)."""

    def __init__(self, identity: BotIdentity) -> None:
        self.identity = identity
        self.updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(100_000_000 + secrets.randbelow(100_000_000))
        self.allowed_updates: frozenset[str] | None = None
        self.webhook: WebhookConfig | None = None
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.default_menu_button: dict[str, Any] | None = None
        self.callbacks: dict[str, PendingCallback] = {}
        self.active_poll: PollTicket | None = None
        self.profile: dict[str, str] = {}

    def accepts(self, kind: str) -> bool:
        """Tell whether updates of ``kind`` pass the bot's ``allowed_updates``."""
        if self.allowed_updates is None:
            return kind not in DEFAULT_EXCLUDED_UPDATES
        return kind in self.allowed_updates

    def next_update_id(self) -> int:
        """Return the next update id."""
        return next(self._update_ids)


class World:
    """All simulated Telegram state of one double (internals).

    Args:
        notify: Called after every change, to wake whoever waits for one.
    """

    def __init__(self, notify: Callable[[], None]) -> None:
        self.notify = notify
        self.bots: dict[str, BotState] = {}
        self.bots_by_id: dict[int, BotState] = {}
        self.users: dict[int, UserProfile] = {}
        self.private_chats: dict[tuple[int, int], PrivateChat] = {}
        self.channels: dict[int, Channel] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.photo_sets: dict[str, list[StoredFile]] = {}
        self.sent: list[ChatMessage] = []
        self.calls: list[ApiCall] = []
        self.deliveries: list[WebhookDelivery] = []
        self.dropped_updates: list[dict[str, Any]] = []
        self.file_counter = itertools.count()
        self.call_counter = itertools.count(1)

    def private_chat(self, bot: BotState, user: UserProfile) -> PrivateChat:
        """Return (creating it if needed) the private chat of ``bot`` and ``user``."""
        key = (bot.identity.id, user.id)
        chat = self.private_chats.get(key)
        if chat is None:
            chat = self.private_chats[key] = PrivateChat(bot, user)
        return chat

    def push_update(self, bot: BotState, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for ``bot`` unless its ``allowed_updates`` filter it out.

        Returns:
            The update, with its ``update_id``.
        """
        update = {"update_id": bot.next_update_id(), kind: payload}
        if bot.accepts(kind):
            bot.updates.append(update)
        else:
            self.dropped_updates.append(update)
        self.notify()
        return update

    def store_file(self, stored: StoredFile) -> StoredFile:
        """Keep a file so ``getFile`` and downloads find it."""
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored
