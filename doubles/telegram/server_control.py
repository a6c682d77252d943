"""The Telegram double's test-control API: observing what bots did, waiting for it, and playing
faults (outages, floods)."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .server_base import FloodRule
from .server_webhooks import WebhookSender
from .state import BotIdentity, ChatMessage
from .state_world import ApiCall, WebhookConfig, WebhookDelivery, World

T = TypeVar("T")
OUTAGE_MODES = ("bad_gateway", "reset", "server_error")


class ControlApi(WebhookSender):
    """What a test reads from the double (calls, messages, deliveries, settings), waits for,
    and the faults it plays (outages, floods), plus :meth:`reset`."""

    @property
    def calls(self) -> list[ApiCall]:
        """Return every Bot API request received, oldest first (in-flight ones included)."""
        return list(self._world.calls)

    def calls_to(self, method: str, *, bot: BotIdentity | None = None) -> list[ApiCall]:
        """Return the calls of one method (case-insensitive), optionally of one bot."""
        name = method.lower()
        return [
            call
            for call in self.calls
            if call.method.lower() == name and (bot is None or call.bot_id == bot.id)
        ]

    @property
    def sent(self) -> list[ChatMessage]:
        """Return every message bots sent (any chat), oldest first."""
        return list(self._world.sent)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Return every attempt to POST an update to a webhook, oldest first."""
        return list(self._world.deliveries)

    def pending_updates(self, bot: BotIdentity | None = None) -> list[dict[str, Any]]:
        """Return the updates not yet confirmed by ``getUpdates`` or delivered to a webhook."""
        return list(self._bot_state(bot).updates)

    @property
    def unanswered_callbacks(self) -> list[tuple[str, str | None]]:
        """Return ``(query id, data)`` of button presses no bot answered."""
        return [
            (pending.query_id, pending.data)
            for state in list(self._world.bots.values())
            for pending in list(state.callbacks.values())
            if pending.answer is None
        ]

    def commands(
        self, bot: BotIdentity | None = None, *, scope: str = "default", language_code: str = ""
    ) -> list[dict[str, str]]:
        """Return the commands a bot set for a scope type (``setMyCommands``)."""
        key = (json.dumps({"type": scope}, sort_keys=True), language_code)
        return list(self._bot_state(bot).commands.get(key, []))

    def webhook_info(self, bot: BotIdentity | None = None) -> WebhookConfig | None:
        """Return the bot's webhook configuration, or ``None``."""
        return self._bot_state(bot).webhook

    def file_bytes(self, file_id: str) -> bytes:
        """Return the bytes of a stored file."""
        return self._world.files[file_id].data

    async def wait_until(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, what: str = "the condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        The predicate runs on the double's thread whenever its state changes.

        Raises:
            TimeoutError: Naming ``what`` and the bot's latest calls.
        """
        return await self._run(self._wait(predicate, timeout, lambda: f"no {what}"))

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> ApiCall:
        """Wait for a completed call of ``method`` with ``seq > after`` matching ``predicate``."""
        name = method.lower()

        def check() -> ApiCall | None:
            for call in self._world.calls:
                if (
                    call.seq > after
                    and call.method.lower() == name
                    and call.response is not None
                    and (predicate is None or predicate(call))
                ):
                    return call
            return None

        return await self._run(self._wait(check, timeout, lambda: f"no {method} call"))

    def set_down(self, down: bool | float = True, *, mode: str = "bad_gateway") -> None:
        """Make every Bot API request (file downloads included) fail, like an outage.

        Args:
            down: ``True`` until ``set_down(False)``; a number of seconds; ``False`` to end.
            mode: How requests fail:
                ``bad_gateway`` (default): HTTP 502 with nginx's HTML page, what
                api.telegram.org answers while its backend is away. The body is not JSON, so
                aiogram raises ``ClientDecodeError`` - the path a client's retry logic most
                often forgets.
                ``reset``: the connection is dropped without an answer; aiogram raises
                ``TelegramNetworkError``.
                ``server_error``: HTTP 500 ``{"ok": false, "error_code": 500, ...}``;
                aiogram raises ``TelegramServerError``.

        Waiting ``getUpdates`` requests fail at once; webhook deliveries pause.
        """
        if mode not in OUTAGE_MODES:
            raise ValueError(f"mode must be one of {OUTAGE_MODES}")
        if isinstance(down, bool):
            until = math.inf if down else 0.0
        else:
            until = time.monotonic() + float(down) if down > 0 else 0.0

        def apply() -> None:
            self._down_mode = mode
            self._down_until = until
            self._notify()

        self._sync(apply)

    def flood(
        self, n: int = 1, retry_after: int = 5, *, methods: str | Iterable[str] | None = None
    ) -> None:
        """Answer the next ``n`` matching calls with 429 ``Too Many Requests: retry after N``.

        Args:
            n: How many calls to refuse.
            retry_after: The ``retry_after`` parameter sent.
            methods: Method name(s) to refuse. ``None`` means every method except
                ``getUpdates``: a running polling loop would otherwise swallow the errors
                meant for the calls under test. Name ``getUpdates`` to flood it.
        """
        if isinstance(methods, str):
            methods = [methods]
        names = None if methods is None else frozenset(self._canonical(m) or m for m in methods)
        rule = FloodRule(n, retry_after, names)
        self._sync(lambda: self._floods.append(rule))

    def reset(self) -> None:
        """Forget bots, users, chats, files, calls, webhooks and faults; keep serving."""

        def clear() -> None:
            for bot in self._world.bots.values():
                self.stop_webhook(bot)
                if bot.active_poll is not None:
                    bot.active_poll.terminated = "shutdown"
            self._world = World(self._notify)
            self._floods.clear()
            self._down_until = 0.0
            self.internal_errors.clear()
            self.unimplemented_calls.clear()
            self._notify()

        self._sync(clear)
